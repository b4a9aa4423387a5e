package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// healthz answers while the process is up, whatever the database does.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only while the database is reachable and migrated, so
// a load balancer stops sending traffic to a replica that cannot serve it.
func (s *Server) readyz(c echo.Context) error {
	if s.ready != nil {
		if err := s.ready(c.Request()); err != nil {
			p := problem(http.StatusServiceUnavailable, "not-ready", "Not Ready", err.Error())
			p.retryAfter = 5
			return p
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
