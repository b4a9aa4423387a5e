package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// Limit is a per-key request rate: Rate requests per second on average, in
// bursts of up to Burst.
type Limit struct {
	Rate  float64
	Burst int
}

// Default limits: with 1000-event batches, 500 requests/s lets one key post
// 500 000 events/s; tokens allow 20 000 mints or verifications/s. Both are
// well above what one replica serves, so they stop runaway clients only.
var (
	DefaultIngestLimit = Limit{Rate: 500, Burst: 1000}
	DefaultTokenLimit  = Limit{Rate: 20000, Burst: 40000}
)

// limiter keeps a token bucket per API key for one class of routes.
type limiter struct {
	limit Limit
	mu    sync.Mutex
	keys  map[string]*rate.Limiter
}

func newLimiter(l Limit) *limiter {
	return &limiter{limit: l, keys: make(map[string]*rate.Limiter)}
}

func (l *limiter) get(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.keys[key]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(l.limit.Rate), l.limit.Burst)
		l.keys[key] = lim
	}
	return lim
}

// middleware refuses requests over the key's rate with 429, Retry-After and
// the RateLimit headers (IETF draft and the common X-RateLimit-* ones). It
// runs after authentication, so the key is known and verified.
func (l *limiter) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		lim := l.get(principal(c).KeySID)
		now := time.Now()
		r := lim.ReserveN(now, 1)
		delay := r.DelayFrom(now)
		remaining := int(math.Max(0, math.Floor(lim.TokensAt(now))))
		h := c.Response().Header()
		limit := strconv.Itoa(l.limit.Burst)
		h.Set("RateLimit-Limit", limit)
		h.Set("X-RateLimit-Limit", limit)
		h.Set("RateLimit-Remaining", strconv.Itoa(remaining))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
		if delay > 0 {
			r.CancelAt(now) // a refused request does not spend a token
			secs := int(math.Ceil(delay.Seconds()))
			h.Set("RateLimit-Reset", strconv.Itoa(secs))
			h.Set("X-RateLimit-Reset", strconv.Itoa(secs))
			p := problem(http.StatusTooManyRequests, "rate-limited", "Too Many Requests",
				fmt.Sprintf("this key may make %g requests per second here; retry after %d s", l.limit.Rate, secs))
			p.retryAfter = secs
			return p
		}
		return next(c)
	}
}
