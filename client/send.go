package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

const (
	// attemptTimeout bounds one request, so that a server that stops
	// answering costs a retry, not a sender.
	attemptTimeout = 30 * time.Second
	// backoffBase and backoffCap shape the exponential backoff: the n-th
	// retry waits a random time in [0, min(cap, base·2ⁿ)) ("full jitter"),
	// so that clients that failed together do not retry together.
	backoffBase = 100 * time.Millisecond
	backoffCap  = 10 * time.Second
	// callAttempts is how often MintToken, VerifyToken and Report try.
	callAttempts = 4
	userAgent    = "tally-go-client/1"
)

// ingestResult is the answer to a posted batch (§4).
type ingestResult struct {
	Accepted   int64 `json:"accepted"`
	Duplicates int64 `json:"duplicates"`
	Late       int64 `json:"late"`
}

// send posts b until it is acknowledged or given up on.
func (c *Client) send(b *batch) {
	defer c.finish(b)
	first := time.Now()
	for attempt := 0; len(b.events) > 0; {
		var res ingestResult
		err := c.postEvents(b.events, &res)
		if err == nil {
			c.accepted.Add(res.Accepted)
			c.duplicates.Add(res.Duplicates)
			c.late.Add(res.Late)
			return
		}
		var apiErr *Error
		if errors.As(err, &apiErr) && !retryable(apiErr.Status) {
			if c.dropInvalid(b, apiErr) {
				continue // the rest of the batch is valid: send it at once
			}
			c.fail(len(b.events), fmt.Errorf("tally client: %d events refused: %w", len(b.events), err))
			return
		}
		attempt++
		if !c.keepTrying(b, first) {
			c.fail(len(b.events), fmt.Errorf("tally client: gave up on %d events after %d attempts in %s: %w",
				len(b.events), attempt, time.Since(first).Round(time.Millisecond), err))
			return
		}
		t := time.NewTimer(backoff(attempt, err))
		select {
		case <-t.C:
		case <-c.abort.Done():
			t.Stop()
		}
	}
}

// dropInvalid handles a 422 that names the invalid events of b (a body is
// all or nothing, so the valid ones were refused with them): it gives up on
// the named events, keeps the others in b for sending again, and reports
// whether any is left. A refusal that names no event fails the whole batch.
func (c *Client) dropInvalid(b *batch, e *Error) bool {
	if e.Status != http.StatusUnprocessableEntity || len(e.Errors) == 0 {
		return false
	}
	bad := map[int]bool{}
	for _, fe := range e.Errors {
		if fe.Index < 0 || fe.Index >= len(b.events) {
			return false
		}
		bad[fe.Index] = true
	}
	refused := *e
	refused.Errors = make([]FieldError, len(e.Errors))
	for i, fe := range e.Errors {
		fe.EventID = b.events[fe.Index].ID
		refused.Errors[i] = fe
	}
	kept := b.events[:0]
	for i, ev := range b.events {
		if !bad[i] {
			kept = append(kept, ev)
		}
	}
	b.events = kept
	c.fail(len(bad), fmt.Errorf("tally client: %d events refused: %w", len(bad), &refused))
	return len(kept) > 0
}

// retryable reports whether an answer with status may succeed later.
func retryable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// backoff is how long to wait before the attempt-th retry after err: full
// jitter, but never less than the server's Retry-After.
func backoff(attempt int, err error) time.Duration {
	ceiling := backoffCap
	if attempt < 20 && backoffBase<<attempt < backoffCap {
		ceiling = backoffBase << attempt
	}
	d := rand.N(ceiling)
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.retryAfter > d {
		d = apiErr.retryAfter
	}
	return d
}

// wireEvent is an event as posted.
type wireEvent struct {
	ID         string `json:"id"`
	Activity   string `json:"activity"`
	Source     string `json:"source"`
	ServiceSID string `json:"service_sid"`
	Identity   string `json:"identity"`
	OccurredAt string `json:"occurred_at"`
	Actor      string `json:"actor,omitempty"`
	ChannelSID string `json:"channel_sid,omitempty"`
	EndpointID string `json:"endpoint_id,omitempty"`
}

// postEvents posts one batch, for at most attemptTimeout.
func (c *Client) postEvents(events []usage.Event, out *ingestResult) error {
	ctx, cancel := context.WithTimeout(c.abort, attemptTimeout)
	defer cancel()
	account, err := c.accountSID(ctx)
	if err != nil {
		return err
	}
	wire := make([]wireEvent, len(events))
	for i := range events {
		e := &events[i]
		wire[i] = wireEvent{ID: e.ID, Activity: string(e.Activity), Source: string(e.Source),
			ServiceSID: e.ServiceSID, Identity: e.Identity, OccurredAt: e.OccurredAt.Format(time.RFC3339Nano),
			Actor: e.Actor, ChannelSID: e.ChannelSID, EndpointID: e.EndpointID}
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false) // <, > and & as themselves: the body stays within encodedSize's bound
	if err := enc.Encode(struct {
		Events []wireEvent `json:"events"`
	}{wire}); err != nil {
		return fmt.Errorf("tally client: encode events: %w", err)
	}
	return c.roundTrip(ctx, http.MethodPost, "/v1/accounts/"+account+"/events", body.Bytes(), out)
}

// roundTrip makes one request. A non-2xx answer is a *Error; anything else
// that goes wrong (no answer, an answer cut short or garbled) is an error
// of the transport, worth retrying.
func (c *Client) roundTrip(ctx context.Context, method, path string, body []byte, out any) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return fmt.Errorf("tally client: %s %s: %w", method, path, err)
	}
	req.SetBasicAuth(c.cfg.KeySID, c.cfg.Secret)
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("tally client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("tally client: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out != nil {
			if err := json.Unmarshal(answer, out); err != nil {
				return fmt.Errorf("tally client: %s %s: answer %d: %w", method, path, resp.StatusCode, err)
			}
		}
		return nil
	}
	return apiError(resp, answer)
}

// apiError reads a problem document; what is not one still gives the status.
func apiError(resp *http.Response, body []byte) *Error {
	var p problem
	_ = json.Unmarshal(body, &p) // a proxy's error page is not a problem document
	e := &Error{Status: resp.StatusCode, Type: p.Type, Title: p.Title, Detail: p.Detail, Errors: p.Errors, Reason: p.Reason}
	if e.Title == "" {
		e.Title = http.StatusText(resp.StatusCode)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil && s > 0 {
			e.retryAfter = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			e.retryAfter = time.Until(t)
		}
	}
	return e
}

// call makes a request whose repetition is harmless (a token minted twice,
// a verification recorded once, a read), retrying what may succeed later a
// few times, within ctx.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	if c.isClosed() {
		return ErrClosed
	}
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("tally client: encode %s %s: %w", method, path, err)
		}
	}
	var err error
	for attempt := 1; ; attempt++ {
		err = c.roundTrip(ctx, method, path, body, out)
		var apiErr *Error
		if err == nil || ctx.Err() != nil || attempt == callAttempts || (errors.As(err, &apiErr) && !retryable(apiErr.Status)) {
			return err
		}
		t := time.NewTimer(backoff(attempt, err))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// accountSID returns the account to name in paths: the configured one, or
// the key's own, asked of the server (GET /v1/me) once.
func (c *Client) accountSID(ctx context.Context) (string, error) {
	// A channel, not a mutex: a caller whose ctx ends stops waiting for
	// another caller's question.
	select {
	case c.accountSem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("tally client: find the key's account: %w", ctx.Err())
	}
	defer func() { <-c.accountSem }()
	if c.account != "" {
		return c.account, nil
	}
	var me struct {
		AccountSID string `json:"account_sid"`
	}
	if err := c.roundTrip(ctx, http.MethodGet, "/v1/me", nil, &me); err != nil {
		return "", err
	}
	if !usage.IsAccountSID(me.AccountSID) {
		return "", fmt.Errorf("tally client: GET /v1/me: account_sid %q is not an account SID", me.AccountSID)
	}
	c.account = me.AccountSID
	return c.account, nil
}
