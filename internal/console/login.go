package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/tallyhq/tally/internal/usage"
)

// Limit is a rate of failed sign-ins: Rate per second on average, in
// bursts of up to Burst.
type Limit struct {
	Rate  float64
	Burst int
}

// Default sign-in limits: a person who mistypes a secret a few times is
// never held up, while guessing a 190-bit secret, or trying many keys
// from one address, is slowed to a crawl.
var (
	DefaultKeySignIns     = Limit{Rate: 1.0 / 12, Burst: 5} // 5 a minute per key SID
	DefaultAddressSignIns = Limit{Rate: 1.0 / 3, Burst: 20} // 20 a minute per address
)

func orDefault(l, def Limit) Limit {
	if l.Rate <= 0 || l.Burst <= 0 {
		return def
	}
	return l
}

// attempts keeps a token bucket of failed sign-ins per key SID or address.
// Only failures take a token, so signing in works however often one does
// it right; a bucket that is full again is forgotten.
type attempts struct {
	limit Limit
	mu    sync.Mutex
	by    map[string]*rate.Limiter
}

func newAttempts(l Limit) *attempts {
	return &attempts{limit: l, by: make(map[string]*rate.Limiter)}
}

// wait returns how long name must wait before its next attempt; 0: now.
func (a *attempts) wait(name string, now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	lim, ok := a.by[name]
	if !ok || lim.TokensAt(now) >= 1 {
		return 0
	}
	return time.Duration((1 - lim.TokensAt(now)) / a.limit.Rate * float64(time.Second))
}

// failed takes a token for a failed attempt of name.
func (a *attempts) failed(name string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lim, ok := a.by[name]
	if !ok {
		if len(a.by) >= 10000 {
			a.prune(now)
		}
		lim = rate.NewLimiter(rate.Limit(a.limit.Rate), a.limit.Burst)
		a.by[name] = lim
	}
	lim.AllowN(now, 1)
}

// prune forgets the buckets that have filled up again: they would allow
// what a fresh one allows.
func (a *attempts) prune(now time.Time) {
	for k, lim := range a.by {
		if lim.TokensAt(now) >= float64(a.limit.Burst) {
			delete(a.by, k)
		}
	}
}

// clientAddress is the address the connection came from. Forwarded headers
// are not trusted here: anyone could send one to get a fresh bucket.
func clientAddress(c echo.Context) string {
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if err != nil {
		return c.Request().RemoteAddr
	}
	return host
}

type loginPage struct {
	KeySID  string
	Message string
}

func (h *Handler) loginForm(c echo.Context) error {
	if _, err := h.session(c); err == nil {
		return c.Redirect(http.StatusSeeOther, Prefix+"/")
	}
	return h.render(c, http.StatusOK, "login", loginPage{})
}

// login checks a key SID and secret as the API does, and starts a session
// for a finance or admin key.
func (h *Handler) login(c echo.Context) error {
	ctx := c.Request().Context()
	sid := strings.TrimSpace(c.FormValue("key_sid"))
	secret := c.FormValue("secret")
	now := time.Now() // rate limits are about real time, not the service's clock
	addr := clientAddress(c)
	keyName := sid
	if !usage.IsKeySID(sid) {
		keyName = "(not a key SID)" // bounds the buckets an attacker can make
	}
	if wait := max(h.byAddress.wait(addr, now), h.byKey.wait(keyName, now)); wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		return h.render(c, http.StatusTooManyRequests, "login", loginPage{KeySID: sid,
			Message: "Too many failed sign-ins. Wait " + strconv.Itoa(secs) + " seconds and try again."})
	}
	p, err := h.checkKey(c, sid, secret)
	if errors.Is(err, usage.ErrUnauthorized) {
		h.byAddress.failed(addr, now)
		h.byKey.failed(keyName, now)
		return h.render(c, http.StatusUnauthorized, "login", loginPage{KeySID: sid,
			Message: "That key SID and secret do not match an active API key."})
	}
	if err != nil {
		return err
	}
	if p.Role != usage.RoleFinance && p.Role != usage.RoleAdmin {
		return h.render(c, http.StatusForbidden, "login", loginPage{KeySID: sid,
			Message: "This key has the role " + string(p.Role) + ": it may not use the console. Sign in with a finance or admin key."})
	}
	// A new token at every sign-in; a session the browser still held ends.
	if ck, err := c.Cookie(SessionCookie); err == nil && ck.Value != "" {
		if err := h.store.EndSession(ctx, tokenHash(ck.Value)); err != nil {
			return err
		}
	}
	token, hash := newSessionToken()
	if err := h.store.CreateSession(ctx, hash, p.KeySID, h.now().Add(h.sessionTTL)); err != nil {
		return err
	}
	c.SetCookie(sessionCookie(c, token, int(h.sessionTTL/time.Second)))
	return c.Redirect(http.StatusSeeOther, Prefix+"/")
}

// checkKey verifies a key SID and secret: the sealed secret is opened and
// compared in constant time, as the API's Basic auth does. Unknown, wrong
// and revoked keys are all usage.ErrUnauthorized, so a visitor cannot tell
// them apart.
func (h *Handler) checkKey(c echo.Context, sid, secret string) (usage.Principal, error) {
	if !usage.IsKeySID(sid) || secret == "" {
		return usage.Principal{}, usage.ErrUnauthorized
	}
	rec, err := h.store.KeyForAuth(c.Request().Context(), sid)
	if errors.Is(err, usage.ErrNotFound) {
		return usage.Principal{}, usage.ErrUnauthorized
	}
	if err != nil {
		return usage.Principal{}, err
	}
	clear, err := h.box.Open(rec.Sealed, sid)
	if err != nil {
		return usage.Principal{}, err
	}
	want, got := sha256.Sum256([]byte(clear)), sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(want[:], got[:]) != 1 || rec.Revoked {
		return usage.Principal{}, usage.ErrUnauthorized
	}
	return rec.Principal, nil
}

// logout ends the session (its row is deleted) and the cookie.
func (h *Handler) logout(c echo.Context) error {
	if ck, err := c.Cookie(SessionCookie); err == nil && ck.Value != "" {
		if err := h.store.EndSession(c.Request().Context(), tokenHash(ck.Value)); err != nil {
			return err
		}
	}
	c.SetCookie(sessionCookie(c, "", -1))
	return c.Redirect(http.StatusSeeOther, Prefix+"/login")
}
