// Package pgtest gives each test its own PostgreSQL database, cloned from a
// migrated template, on a throwaway private cluster or on the server named by
// TALLY_TEST_DATABASE_URL.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/internal/pgcluster"
	"github.com/tallyhq/tally/internal/postgres"
)

// EnvURL names an existing server to test on instead of a private cluster.
const EnvURL = "TALLY_TEST_DATABASE_URL"

var (
	serverURL string             // maintenance database of the server
	cluster   *pgcluster.Cluster // nil on an external server
	template  string
	prefix    string     // of every database this process creates
	cloneMu   sync.Mutex // CREATE DATABASE … TEMPLATE needs the template idle
)

// Main runs a package's tests: call it from TestMain. It prepares the
// server and the migrated template, runs the tests and cleans up.
func Main(m *testing.M) {
	code, err := setup()
	if err == nil {
		code = m.Run()
	} else {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		code = 1
	}
	teardown()
	os.Exit(code)
}

func setup() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prefix = "tally_test_" + randomHex(4)
	template = prefix + "_tmpl"
	serverURL = os.Getenv(EnvURL)
	if serverURL == "" {
		dir, err := os.MkdirTemp("", "tally-pgtest-")
		if err != nil {
			return 1, err
		}
		c, err := pgcluster.Start(ctx, dir+"/pg", pgcluster.Options{Fast: true})
		if err != nil {
			os.RemoveAll(dir)
			return 1, err
		}
		cluster = c
		serverURL = c.ConnString("postgres")
	}
	if err := exec(ctx, "CREATE DATABASE "+pgx.Identifier{template}.Sanitize()); err != nil {
		return 1, err
	}
	pool, err := pgxpool.New(ctx, withDB(serverURL, template))
	if err != nil {
		return 1, err
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool); err != nil {
		return 1, fmt.Errorf("migrate template: %w", err)
	}
	return 0, nil
}

func teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if cluster != nil {
		dir := cluster.Dir()
		cluster.Stop(ctx)
		os.RemoveAll(dir + "/..")
		return
	}
	if serverURL == "" {
		return
	}
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1`, prefix+"%")
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)")
	}
}

// NewDB creates a migrated database for one test and drops it when the test
// ends. It returns a pool on it and its connection string.
func NewDB(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	name := prefix + "_" + randomHex(6)
	cloneMu.Lock()
	err := exec(context.Background(), fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize()))
	cloneMu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	connString := withDB(serverURL, name)
	pool, err := pgxpool.New(context.Background(), connString)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		if err := exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return pool, connString
}

// ServerURL is the connection string of the server's maintenance database.
func ServerURL() string { return serverURL }

// Cluster is the private cluster the tests run on, or nil on an external
// server. Fault tests stop and start it.
func Cluster() *pgcluster.Cluster { return cluster }

func exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("connect to test server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// withDB replaces the database of a connection URL.
func withDB(connString, db string) string {
	u, err := url.Parse(connString)
	if err != nil || u.Scheme == "" {
		// A keyword/value string: a later dbname wins.
		return connString + " dbname=" + db
	}
	u.Path = "/" + db
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
