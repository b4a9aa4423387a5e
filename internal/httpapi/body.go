package httpapi

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Default read timeouts of request bodies. A client that stalls or trickles
// its body ties up a goroutine and, while it streams into PostgreSQL, a
// database connection; these bound for how long.
const (
	// DefaultBodyIdle is the longest wait for the next bytes of a body.
	DefaultBodyIdle = 10 * time.Second
	// DefaultBodyTimeout bounds the whole of a JSON body (1 MiB at most).
	DefaultBodyTimeout = 30 * time.Second
	// DefaultStreamTimeout bounds the whole of an NDJSON body (64 MiB at
	// most: about 230 KB/s over five minutes).
	DefaultStreamTimeout = 5 * time.Minute
)

// bodyError is a request body that could not be read because of the client:
// a malformed chunked encoding, a body cut short, a corrupt gzip stream, a
// stall. It is answered 400 (408 for a stall), never 5xx, and not logged as
// a server fault.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "read request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// timeout reports whether the client stalled rather than broke the body.
func (e *bodyError) timeout() bool {
	var ne interface{ Timeout() bool }
	return errors.As(e.err, &ne) && ne.Timeout()
}

// timedBody reads a request body under an idle deadline for every read and
// a deadline for the whole body, both set on the connection, so a read
// blocked on a silent client fails instead of waiting for ever.
type timedBody struct {
	body     io.ReadCloser
	rc       *http.ResponseController
	idle     time.Duration
	deadline time.Time
	eof      bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	if b.eof {
		return b.body.Read(p)
	}
	d := time.Now().Add(b.idle)
	if d.After(b.deadline) {
		d = b.deadline
	}
	_ = b.rc.SetReadDeadline(d) // if unsupported, the server's ReadTimeout still holds
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		// The server reads the connection in the background once the body
		// is consumed; a deadline left behind would cancel the request
		// while the handler still commits.
		b.eof = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil:
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			err = &bodyError{err}
		}
	}
	return n, err
}

func (b *timedBody) Close() error { return b.body.Close() }

// bodyDeadlines is middleware that puts every request body under the read
// deadlines: idle per read, and a whole-body bound that is longer for the
// NDJSON streams of backfills.
func (s *Server) bodyDeadlines(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.Body != nil && req.Body != http.NoBody {
			whole := s.bodyTimeout
			if strings.HasPrefix(req.Header.Get(echo.HeaderContentType), "application/x-ndjson") {
				whole = s.streamTimeout
			}
			req.Body = &timedBody{body: req.Body, rc: http.NewResponseController(c.Response()),
				idle: s.bodyIdle, deadline: time.Now().Add(whole)}
		}
		return next(c)
	}
}

// ingestBody returns the decoded body of an events request, at most limit
// bytes once decoded. Content-Encoding gzip is decoded here; the limit
// applies to what comes out, so a small bomb is refused 413 after limit
// bytes. The compressed body is bounded too: concatenated empty gzip members
// would otherwise be an endless body that decodes to nothing.
func ingestBody(c echo.Context, limit int64) (io.Reader, error) {
	req := c.Request()
	switch enc := strings.ToLower(strings.TrimSpace(req.Header.Get(echo.HeaderContentEncoding))); enc {
	case "", "identity":
		return http.MaxBytesReader(c.Response(), req.Body, limit), nil
	case "gzip", "x-gzip":
		raw := http.MaxBytesReader(c.Response(), req.Body, limit)
		return http.MaxBytesReader(c.Response(), &gunzipBody{r: raw}, limit), nil
	default:
		c.Response().Header().Set("Accept-Encoding", "gzip")
		return nil, errUnsupportedMedia(fmt.Sprintf("Content-Encoding %q is not supported: send gzip or none", enc))
	}
}

// gunzipBody decodes a gzip body, reading its header only at the first
// Read (a handler that refuses the request never waits for it). Every
// decoding error is the client's.
type gunzipBody struct {
	r  io.ReadCloser
	zr *gzip.Reader
}

func (g *gunzipBody) Read(p []byte) (int, error) {
	if g.zr == nil {
		zr, err := gzip.NewReader(g.r)
		if err != nil {
			return 0, gzipError(err)
		}
		g.zr = zr
	}
	n, err := g.zr.Read(p)
	if err != nil && err != io.EOF {
		err = gzipError(err)
	}
	return n, err
}

func (g *gunzipBody) Close() error { return g.r.Close() }

func gzipError(err error) error {
	var be *bodyError
	var mbe *http.MaxBytesError
	if errors.As(err, &be) || errors.As(err, &mbe) {
		return err
	}
	if err == io.EOF { // no gzip header at all
		err = io.ErrUnexpectedEOF
	}
	return &bodyError{fmt.Errorf("gzip: %w", err)}
}
