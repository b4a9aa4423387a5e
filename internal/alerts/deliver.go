package alerts

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
)

// Delivery defaults (CONTRACT §14).
const (
	DefaultTimeout     = 10 * time.Second // no answer within this is a failed attempt
	DefaultBackoffBase = 10 * time.Second // the first retry comes 5–10 s after the first attempt
	DefaultBackoffMax  = time.Hour
	DefaultRetryFor    = 25 * time.Hour // retried for at least 24 h after the firing
	DefaultPoll        = time.Second
	// MaxResponseBody is how much of an answer is read (and discarded).
	MaxResponseBody = 64 << 10
)

// Worker sends the outbox's webhooks. Any number of workers, in one
// process or in several replicas, may share the outbox: each delivery is
// claimed by one worker for one attempt at a time.
type Worker struct {
	Store   *postgres.Store
	Box     *secrets.Box // opens the alerts' signing secrets
	Now     func() time.Time
	Metrics *Metrics
	Log     *slog.Logger

	// AllowPrivate lifts the address rule (TALLY_WEBHOOK_ALLOW_PRIVATE=1):
	// loopback and private addresses may be dialled, and http used.
	AllowPrivate bool
	// RootCAs verifies receivers' certificates; nil means the system's.
	RootCAs *x509.CertPool
	// Resolver resolves webhook hosts; nil means the system's.
	Resolver *net.Resolver

	Timeout     time.Duration // per attempt; DefaultTimeout when zero
	BackoffBase time.Duration // DefaultBackoffBase when zero
	BackoffMax  time.Duration // DefaultBackoffMax when zero
	RetryFor    time.Duration // DefaultRetryFor when zero
	// Lease is how long a claimed delivery is not due for anyone else;
	// Timeout + 20 s when zero. It must outlast an attempt.
	Lease time.Duration
	// Parallel is how many accounts one worker serves at once, and how many
	// deliveries of one account it sends at once; 8 when zero.
	Parallel int

	once   sync.Once
	client *http.Client
}

func (w *Worker) now() time.Time {
	if w.Now == nil {
		return time.Now().UTC()
	}
	return w.Now().UTC()
}

func (w *Worker) timeout() time.Duration { return cmp.Or(w.Timeout, DefaultTimeout) }

// Client returns the HTTP client webhooks are sent with: the connection's
// address checked by Refuse unless AllowPrivate, no proxy (it would dial
// for us), no redirect followed, a timeout on the whole attempt.
func (w *Worker) Client() *http.Client {
	w.once.Do(func() {
		d := &net.Dialer{Timeout: w.timeout(), KeepAlive: 30 * time.Second, Resolver: w.Resolver}
		if !w.AllowPrivate {
			d.Control = Refuse
		}
		w.client = &http.Client{
			Transport: &http.Transport{
				Proxy:                 nil,
				DialContext:           d.DialContext,
				TLSClientConfig:       &tls.Config{RootCAs: w.RootCAs, MinVersion: tls.VersionTLS12},
				TLSHandshakeTimeout:   w.timeout(),
				ResponseHeaderTimeout: w.timeout(),
				MaxIdleConns:          100,
				MaxIdleConnsPerHost:   2,
				IdleConnTimeout:       90 * time.Second,
				ForceAttemptHTTP2:     true,
			},
			Timeout: w.timeout(),
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	})
	return w.client
}

// Run sends due deliveries every poll interval until ctx ends.
func (w *Worker) Run(ctx context.Context, poll time.Duration) {
	t := time.NewTicker(cmp.Or(poll, DefaultPoll))
	defer t.Stop()
	for {
		if _, err := w.RunOnce(ctx); err != nil && ctx.Err() == nil && w.Log != nil {
			w.Log.ErrorContext(ctx, "deliver webhooks", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce sends the deliveries due now, of up to 100 accounts, and returns
// how many attempts it made. Accounts are served Parallel at a time, so
// that a receiver that does not answer delays no other account's webhooks.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	now := w.now()
	accounts, err := w.Store.DueDeliveryAccounts(ctx, now, 100)
	if err != nil {
		return 0, err
	}
	var (
		mu   sync.Mutex
		n    int
		errs []error
		wg   sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	slots := make(chan struct{}, cmp.Or(w.Parallel, 8))
	for _, a := range accounts {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			// Claimed only now, so that the lease starts with the attempts.
			claimed, err := w.Store.ClaimDeliveries(ctx, a, w.now(), cmp.Or(w.Lease, w.timeout()+20*time.Second), cmp.Or(w.Parallel, 8))
			if err != nil {
				fail(err)
				return
			}
			var sends sync.WaitGroup
			for _, d := range claimed {
				sends.Go(func() {
					if err := w.attempt(ctx, d); err != nil {
						fail(err)
					}
				})
			}
			sends.Wait()
			mu.Lock()
			n += len(claimed)
			mu.Unlock()
		})
	}
	wg.Wait()
	return n, errors.Join(errs...)
}

// attempt sends one claimed delivery and records the outcome.
func (w *Worker) attempt(ctx context.Context, d postgres.ClaimedDelivery) error {
	start := time.Now()
	code, sendErr := w.send(ctx, d)
	took := time.Since(start)
	at := w.now()
	o := postgres.AttemptOutcome{At: at}
	if code != 0 {
		o.StatusCode = &code
	}
	outcome := "delivered"
	switch {
	case sendErr == nil:
		o.Status = postgres.DeliveryDelivered
	case ctx.Err() != nil:
		// Shutting down: the attempt did not really happen. The lease
		// runs out and the delivery is sent again after a restart.
		return nil
	case at.Sub(d.CreatedAt) >= cmp.Or(w.RetryFor, DefaultRetryFor):
		o.Status, o.Error, outcome = postgres.DeliveryFailed, sendErr.Error(), "failed"
	default:
		next := at.Add(w.backoff(d.Attempts))
		o.Status, o.Error, o.NextAttempt, outcome = postgres.DeliveryPending, sendErr.Error(), &next, "retry"
	}
	if len(o.Error) > 500 {
		o.Error = o.Error[:500]
	}
	ok, err := w.Store.RecordAttempt(context.WithoutCancel(ctx), d.AccountSID, d.ID, d.Attempts, o)
	if err != nil {
		return err
	}
	w.Metrics.attempted(outcome, took)
	if outcome == "delivered" {
		w.Metrics.delivered(at.Sub(d.CreatedAt))
	}
	if w.Log != nil {
		w.Log.InfoContext(ctx, "webhook attempt", "account_sid", d.AccountSID, "alert_sid", d.AlertSID, "delivery", d.ID,
			"attempt", d.Attempts, "outcome", outcome, "status_code", code, "err", o.Error, "recorded", ok)
	}
	return nil
}

// backoff is the wait after failed attempt number n (1 for the first):
// BackoffBase·2^(n-1), at most BackoffMax, with full jitter over its upper
// half so that replicas and receivers coming back do not see every retry at
// once.
func (w *Worker) backoff(n int) time.Duration {
	base, ceil := cmp.Or(w.BackoffBase, DefaultBackoffBase), cmp.Or(w.BackoffMax, DefaultBackoffMax)
	d := base
	for i := 1; i < n && d < ceil; i++ {
		d *= 2
	}
	d = min(d, ceil)
	return d/2 + rand.N(d/2+1)
}

// send POSTs a delivery's body, signed, and returns the status code (0
// without an answer) and why the attempt failed, nil for a 2xx answer.
func (w *Worker) send(ctx context.Context, d postgres.ClaimedDelivery) (int, error) {
	u, err := url.Parse(d.WebhookURL)
	if err != nil {
		return 0, fmt.Errorf("webhook_url: %w", err)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && w.AllowPrivate) {
		return 0, fmt.Errorf("webhook_url is not https")
	}
	secret, err := w.Box.Open(d.Sealed, d.AlertSID)
	if err != nil {
		return 0, fmt.Errorf("signing secret: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.WebhookURL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tally-webhooks/1")
	req.Header.Set(SignatureHeader, Sign(secret, w.now(), d.Body))
	resp, err := w.Client().Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBody))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("answered %s", strconv.Itoa(resp.StatusCode)+" "+http.StatusText(resp.StatusCode))
	}
	return resp.StatusCode, nil
}
