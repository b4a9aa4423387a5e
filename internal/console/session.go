package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/usage"
)

// SessionCookie names the cookie that carries a console session's token.
const SessionCookie = "tally_session"

// MaxSessionTTL is how long a session lasts at most (§12).
const MaxSessionTTL = 12 * time.Hour

const principalKey = "console.principal"

// newSessionToken returns a fresh session token and the hash stored for it.
// 32 random bytes: a token cannot be guessed, and its hash in the database
// cannot be turned back into a cookie.
func newSessionToken() (token string, hash []byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, tokenHash(token)
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// sessionCookie is the cookie of §12: HttpOnly, SameSite=Strict, Path
// /console, Secure over HTTPS. maxAge < 0 deletes it.
func sessionCookie(c echo.Context, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: SessionCookie, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: isHTTPS(c),
	}
}

// requireSession lets a request through with the principal of its session,
// or sends the visitor to the sign-in form. The session and its key are
// read on every request: a revoked key's sessions end at once.
func (h *Handler) requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := h.session(c)
		if errors.Is(err, usage.ErrNotFound) {
			if ck, cerr := c.Cookie(SessionCookie); cerr == nil && ck.Value != "" {
				c.SetCookie(sessionCookie(c, "", -1))
			}
			return c.Redirect(http.StatusSeeOther, Prefix+"/login")
		}
		if err != nil {
			return err
		}
		c.Set(principalKey, p)
		return next(c)
	}
}

// session returns the principal of the request's session, or an error of
// kind usage.ErrNotFound when there is none that is live.
func (h *Handler) session(c echo.Context) (usage.Principal, error) {
	ck, err := c.Cookie(SessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 64 {
		return usage.Principal{}, fmt.Errorf("no session cookie: %w", usage.ErrNotFound)
	}
	return h.store.Session(c.Request().Context(), tokenHash(ck.Value))
}

func principal(c echo.Context) usage.Principal {
	p, _ := c.Get(principalKey).(usage.Principal)
	return p
}

// authorize is the API's rule (§2) for a session: another account is not
// found unless the key is a platform key and the account exists; then the
// role must be one of roles.
func (h *Handler) authorize(c echo.Context, accountSID string, roles ...usage.Role) error {
	p := principal(c)
	if p.AccountSID != accountSID {
		if !p.Platform || !usage.IsAccountSID(accountSID) {
			return fmt.Errorf("account %s: %w", accountSID, usage.ErrNotFound)
		}
		if _, err := h.store.Account(c.Request().Context(), accountSID); err != nil {
			return err
		}
	}
	for _, r := range roles {
		if p.Role == r {
			return nil
		}
	}
	return fmt.Errorf("role %s on %s: %w", p.Role, c.Path(), usage.ErrForbidden)
}
