package httpapi

import (
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"
)

// stream answers status with a body that write produces as it goes (a CSV
// export). The status and headers leave only with the body's first bytes:
// a failure before them is an ordinary problem document. A failure after
// them cannot change the status any more; the request log middleware then
// aborts the connection, so the client sees a broken answer and not a short
// one that looks complete.
func stream(c echo.Context, status int, contentType string, write func(io.Writer) error) error {
	w := &lazyWriter{res: c.Response(), status: status, contentType: contentType}
	if err := write(w); err != nil {
		return err
	}
	w.commit() // an empty body is still an answer
	return nil
}

// lazyWriter commits the response at its first Write.
type lazyWriter struct {
	res         *echo.Response
	status      int
	contentType string
}

func (w *lazyWriter) commit() {
	if !w.res.Committed {
		w.res.Header().Set(echo.HeaderContentType, w.contentType)
		w.res.WriteHeader(w.status)
	}
}

func (w *lazyWriter) Write(p []byte) (int, error) {
	w.commit()
	n, err := w.res.Write(p)
	if err != nil {
		err = &clientWriteError{err}
	}
	return n, err
}

// clientWriteError is a failure to send the answer: the client went away.
type clientWriteError struct{ err error }

func (e *clientWriteError) Error() string { return "write answer: " + e.err.Error() }
func (e *clientWriteError) Unwrap() error { return e.err }

// afterCommit handles an error returned once the status was sent: there is
// no problem document to write. It records the request as failed (5xx for
// a server fault, logged at ERROR; 499 when the client left), and the
// caller aborts the connection.
func (s *Server) afterCommit(c echo.Context, err error) {
	res := c.Response()
	var we *clientWriteError
	if errors.As(err, &we) || clientGone(c) {
		res.Status = statusClientClosed // only the record: the client is gone
		return
	}
	res.Status = http.StatusInternalServerError // only the record, for the log and metrics
	s.log.ErrorContext(c.Request().Context(), "answer failed after its status was sent; connection aborted",
		"request_id", requestID(c), "method", c.Request().Method, "route", c.Path(), "err", err)
}
