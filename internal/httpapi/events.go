package httpapi

import (
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
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
	var src postgres.EventSource
	switch mt {
	case "application/json":
		b, err := decodeBatch(http.MaxBytesReader(c.Response(), req.Body, MaxJSONBody), now)
		if err != nil {
			return err
		}
		src = b
	case "application/x-ndjson":
		src = newNDJSONSource(http.MaxBytesReader(c.Response(), req.Body, MaxNDJSONBody), now)
	default:
		return errUnsupportedMedia("send application/json or application/x-ndjson, not " + mt)
	}
	res, err := s.store.RecordEvents(req.Context(), account, src)
	if err != nil {
		return err
	}
	s.metrics.recorded(res)
	return c.JSON(http.StatusOK, res)
}
