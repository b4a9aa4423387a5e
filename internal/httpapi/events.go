package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/usage"
)

const (
	// streamPrefetch is how much of an NDJSON body is read before the
	// body may take a database connection: a client that sends its headers
	// and a line and then stalls holds none. Bodies this small are read
	// whole before they touch the pool.
	streamPrefetch = 256 << 10
	// streamWait bounds the wait for a streaming slot; past it the body is
	// refused 503 with Retry-After rather than queued without end.
	streamWait = 10 * time.Second
)

// postEvents ingests a JSON batch or an NDJSON stream, all or nothing, and
// answers only after commit.
func (s *Server) postEvents(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorize(c, account, usage.RoleIngest, usage.RoleAdmin); err != nil {
		return err
	}
	req := c.Request()
	mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil {
		return errUnsupportedMedia("send application/json or application/x-ndjson")
	}
	now := s.now().UTC()
	var src usage.EventSource
	switch mt {
	case "application/json":
		body, err := ingestBody(c, MaxJSONBody)
		if err != nil {
			return err
		}
		b, err := decodeBatch(body, now)
		if err != nil {
			return err
		}
		src = b
	case "application/x-ndjson":
		body, err := ingestBody(c, MaxNDJSONBody)
		if err != nil {
			return err
		}
		br := bufio.NewReaderSize(body, streamPrefetch)
		if _, err := br.Peek(streamPrefetch); err != nil && err != io.EOF {
			return err
		}
		release, err := s.streams.acquire(req.Context(), streamWait)
		if err != nil {
			return err
		}
		defer release()
		src = newNDJSONSource(br, now)
	default:
		return errUnsupportedMedia("send application/json or application/x-ndjson, not " + mt)
	}
	res, err := s.store.RecordEvents(req.Context(), account, src)
	if err != nil {
		return err
	}
	s.metrics.recorded(res)
	return c.JSON(http.StatusOK, newIngestResponse(res))
}

// ingestResponse is the answer to a committed body (openapi.yaml, POST
// /v1/Accounts/{account_sid}/Events): the wire shape of usage.IngestResult,
// which the store and the domain are free to change.
type ingestResponse struct {
	Accepted   int64 `json:"accepted"`
	Duplicates int64 `json:"duplicates"`
	Late       int64 `json:"late"`
}

func newIngestResponse(r usage.IngestResult) ingestResponse {
	return ingestResponse{Accepted: r.Accepted, Duplicates: r.Duplicates, Late: r.Late}
}

// streamSlots caps the NDJSON bodies streaming into PostgreSQL at once. Each
// holds a pool connection for as long as its client takes to send the body,
// so without a cap a few slow clients would hold the whole pool.
type streamSlots struct{ ch chan struct{} }

func newStreamSlots(n int) *streamSlots { return &streamSlots{ch: make(chan struct{}, n)} }

// acquire waits up to wait for a slot; release gives it back.
func (s *streamSlots) acquire(ctx context.Context, wait time.Duration) (release func(), err error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s.ch <- struct{}{}:
		return func() { <-s.ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a streaming slot: %w", ctx.Err())
	case <-t.C:
		return nil, errBusy(fmt.Sprintf("%d NDJSON bodies are streaming already; retry later or send JSON batches", cap(s.ch)))
	}
}
