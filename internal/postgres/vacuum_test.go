package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// TestFoldsVacuumThePendingEvents: while an account ingests and the
// background folds delete what they fold, rollup_pending keeps the size
// of what is pending at once, because the folds vacuum it: its pages are
// reused rather than appended to, and the rows a read steps over are gone.
// Left to autovacuum, which looks once a minute and only past 20 000 dead
// rows, it would hold every event of the test.
func TestFoldsVacuumThePendingEvents(t *testing.T) {
	s, pool, ac := newStore(t)
	vacuumed := make(chan error, 100)
	s.OnPendingVacuum(1000, func(_ time.Duration, err error) { vacuumed <- err })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.FoldInBackground(ctx, 10*time.Millisecond, postgres.FoldParts, nil, nil)
	}()
	t.Cleanup(func() { cancel(); <-done })

	size := `SELECT pg_relation_size('rollup_pending')`
	if pgtest.Engine() == pgtest.Citus {
		size = `SELECT citus_relation_size('rollup_pending')`
	}
	const rounds, perRound = 8, 2000
	var first int64
	for r := range rounds {
		es := make([]usage.Event, perRound)
		for i := range es {
			es[i] = ev(fmt.Sprintf("r%d-%d", r, i), fmt.Sprintf("user-%d", i%300), "2026-11-02T10:00:00Z")
		}
		record(t, s, ac, events(es...))
		deadline := time.Now().Add(30 * time.Second)
		for count(t, pool, `SELECT count(*) FROM rollup_pending`) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: events still pending after 30 s", r)
			}
			time.Sleep(10 * time.Millisecond)
		}
		select {
		case err := <-vacuumed:
			if err != nil {
				t.Fatalf("round %d: vacuum: %v", r, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: %d events folded and no vacuum", r, perRound)
		}
		if r == 0 {
			first = count(t, pool, size)
		}
	}
	last := count(t, pool, size)
	t.Logf("rollup_pending after the first of %d rounds of %d events: %d bytes; after the last: %d", rounds, perRound, first, last)
	if last > 3*first {
		t.Errorf("rollup_pending grew from %d to %d bytes over %d rounds of %d events, each folded: its pages were not reused",
			first, last, rounds, perRound)
	}
	if got := activeUsers(t, s, ac, "2026-11"); got != 300 {
		t.Errorf("active users %d, want 300", got)
	}
}

// TestVacuumSaysWhenItMayNot: PostgreSQL lets a role that owns neither
// rollup_pending nor the database run VACUUM on it, does nothing and
// tells the client nothing. Run as such a role, the folds' vacuum says so
// in the log, once however often a vacuum is due; as the table's owner,
// or the database's, it vacuums and says nothing.
func TestVacuumSaysWhenItMayNot(t *testing.T) {
	owner, url := pgtest.NewDB(t)
	dbOwner, dbOwnerRole := loginRole(t, owner, url)
	var db, was string
	if err := owner.QueryRow(t.Context(), `SELECT current_database(), pg_get_userbyid(datdba) FROM pg_database
		WHERE datname = current_database()`).Scan(&db, &was); err != nil {
		t.Fatal(err)
	}
	alter := func(to string) error {
		_, err := owner.Exec(context.Background(), "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" OWNER TO "+pgx.Identifier{to}.Sanitize())
		return err
	}
	if err := alter(dbOwnerRole); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := alter(was); err != nil { // or the role cannot be dropped
			t.Errorf("give the database back: %v", err)
		}
	})
	notOwner, _ := loginRole(t, owner, url)

	for _, c := range []struct {
		name     string
		pool     *pgxpool.Pool
		want     error
		warnings int
	}{
		{"table owner", owner, nil, 0},
		{"database owner", dbOwner, nil, 0},
		{"neither", notOwner, postgres.ErrMayNotVacuum, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := postgres.New(c.pool, nil)
			vacuumed := make(chan error, 10)
			s.OnPendingVacuum(1, func(_ time.Duration, err error) { vacuumed <- err })
			var logs lockedBuffer
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.FoldInBackground(ctx, time.Hour, 1, nil, slog.New(slog.NewJSONHandler(&logs, nil)))
			}()
			for i := range 3 {
				s.NoteFolded(1)
				select {
				case err := <-vacuumed:
					if !errors.Is(err, c.want) {
						t.Fatalf("vacuum %d: %v, want %v", i, err, c.want)
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("vacuum %d: not run within 30 s", i)
				}
			}
			cancel()
			<-done
			if got := strings.Count(logs.String(), "cannot vacuum the pending events"); got != c.warnings {
				t.Errorf("%d warnings about the right to vacuum, want %d; log:\n%s", got, c.warnings, logs.String())
			}
		})
	}
}

// loginRole creates a role that owns nothing and may log in, dropped when
// the test ends, and returns a pool on url as that role.
func loginRole(t *testing.T, owner *pgxpool.Pool, url string) (*pgxpool.Pool, string) {
	t.Helper()
	role := fmt.Sprintf("tally_role_%d", time.Now().UnixNano())
	password := fmt.Sprintf("pw%d", time.Now().UnixNano())
	if _, err := owner.Exec(t.Context(), fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, password)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := owner.Exec(context.Background(), "DROP ROLE "+role); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User, cfg.ConnConfig.Password = role, password
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, role
}

// lockedBuffer is a log destination that goroutines share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
