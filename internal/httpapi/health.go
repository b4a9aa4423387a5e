package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
)

// healthz answers while the process is up, whatever the database does.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only while the database is reachable and migrated, so
// a load balancer stops sending traffic to a replica that cannot serve it.
// A replica whose every pool connection is in use says "busy", not
// "unreachable": it asks the database on a connection of its own, so the
// answer neither waits for the pool nor blames the database for the load.
func (s *Server) readyz(c echo.Context) error {
	if s.poolExhausted() {
		if err := s.probeDatabase(c.Request().Context()); err != nil {
			return notReady("database unreachable")
		}
		return errBusy("every database connection of this replica is in use; the database answers")
	}
	if s.ready != nil {
		if err := s.ready(c.Request()); err != nil {
			if s.poolExhausted() && s.probeDatabase(c.Request().Context()) == nil {
				return errBusy("every database connection of this replica is in use; the database answers")
			}
			return notReady(err.Error())
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

func notReady(detail string) *Problem {
	p := problem(http.StatusServiceUnavailable, "not-ready", "Not Ready", detail)
	p.retryAfter = 5
	return p
}

// poolExhausted reports whether every connection the pool may open is in use.
func (s *Server) poolExhausted() bool {
	st := s.store.Pool().Stat()
	return st.AcquiredConns() >= st.MaxConns()
}

// probeDatabase pings the database on a connection outside the pool.
func (s *Server) probeDatabase(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, s.store.Pool().Config().ConnConfig)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := conn.Ping(ctx); err != nil {
		return err
	}
	return nil
}
