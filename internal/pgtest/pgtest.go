// Package pgtest gives each test its own database, cloned from a migrated
// template, on a throwaway private cluster or on the server named by
// TALLY_TEST_DATABASE_URL. A package's tests run once per engine named in
// TALLY_TEST_ENGINES: plain PostgreSQL ("postgres") and a private Citus
// cluster of a coordinator and two workers ("citus").
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/internal/pgcluster"
	"github.com/tallyhq/tally/internal/postgres"
)

// EnvURL names an existing server to test on instead of a private cluster
// (plain PostgreSQL only).
const EnvURL = "TALLY_TEST_DATABASE_URL"

// EnvEngines lists the engines to run the tests on, comma-separated, in
// order: "postgres", "citus". Unset, DefaultEngines.
const EnvEngines = "TALLY_TEST_ENGINES"

// The engines.
const (
	Postgres = "postgres"
	Citus    = "citus"
)

// DefaultEngines is the engine list when TALLY_TEST_ENGINES is unset.
const DefaultEngines = Postgres + "," + Citus

// citusWorkers is the size of the test Citus cluster: two workers, so
// that accounts' rows land on different nodes.
const citusWorkers = 2

var (
	engine    string             // of the current run
	serverURL string             // maintenance database of the server (the coordinator on Citus)
	cluster   *pgcluster.Cluster // nil on an external server or on Citus
	citus     *pgcluster.CitusCluster
	tmpDir    string // holding the private cluster, removed at teardown
	template  string
	prefix    string     // of every database this process creates
	cloneMu   sync.Mutex // CREATE DATABASE … TEMPLATE needs the template idle

	// One clone is made ahead, while a test runs, so that the next test
	// finds its database ready; test databases are dropped in the
	// background. After the first NewDB of a run there is always exactly
	// one spare, made or being made.
	spareMu  sync.Mutex
	spareOn  bool // a spare is made or being made
	spare    = make(chan cloned, 1)
	inFlight sync.WaitGroup // spare clones and drops, awaited by teardown
)

type cloned struct {
	name string
	err  error
}

// Main runs a package's tests: call it from TestMain. For each engine of
// TALLY_TEST_ENGINES it prepares the server and the migrated template,
// runs the tests and cleans up; the exit status is the worst of the runs.
// A Citus run is skipped with a message when Citus is not installed,
// unless CI is set, where that fails.
func Main(m *testing.M) { MainOn(m) }

// MainOn is Main for a package whose tests need only some engines: it runs
// those of TALLY_TEST_ENGINES that are in only (all when only is empty),
// or, when none is, the first of only.
func MainOn(m *testing.M, only ...string) {
	engines, err := Engines()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		os.Exit(2)
	}
	if len(only) > 0 {
		engines = slices.DeleteFunc(engines, func(e string) bool { return !slices.Contains(only, e) })
		if len(engines) == 0 {
			engines = only[:1]
		}
	}
	flag.Parse()
	// Fuzzing and listing are not repeated per engine: the first will do.
	if flagSet("test.fuzz") || flagSet("test.fuzzworker") || flagSet("test.list") {
		engines = engines[:1]
	}
	code := 0
	for _, e := range engines {
		if len(engines) > 1 {
			fmt.Printf("pgtest: running the tests on %s\n", describe(e))
		}
		if c := runOn(e, m); c > code {
			code = c
		}
	}
	os.Exit(code)
}

// Engines returns the engines TALLY_TEST_ENGINES asks for.
func Engines() ([]string, error) {
	v := os.Getenv(EnvEngines)
	if strings.TrimSpace(v) == "" {
		v = DefaultEngines
	}
	var engines []string
	for _, e := range strings.Split(v, ",") {
		switch e = strings.TrimSpace(e); e {
		case Postgres, Citus:
			engines = append(engines, e)
		case "":
		default:
			return nil, fmt.Errorf("%s=%q: unknown engine %q (want postgres, citus or both, comma-separated)", EnvEngines, v, e)
		}
	}
	if len(engines) == 0 {
		return nil, fmt.Errorf("%s=%q names no engine", EnvEngines, v)
	}
	return engines, nil
}

func describe(e string) string {
	if e == Citus {
		return fmt.Sprintf("citus (a coordinator and %d workers)", citusWorkers)
	}
	return e
}

func flagSet(name string) bool {
	f := flag.Lookup(name)
	return f != nil && f.Value.String() != "" && f.Value.String() != "false"
}

func runOn(e string, m *testing.M) int {
	engine = e
	defer teardown()
	if err := setup(); err != nil {
		if errors.Is(err, pgcluster.ErrNoCitus) && os.Getenv("CI") == "" {
			fmt.Fprintf(os.Stderr, "pgtest: skipping the tests on citus: %v (CI=true makes this a failure)\n", err)
			return 0
		}
		fmt.Fprintf(os.Stderr, "pgtest: %s: %v\n", e, err)
		return 1
	}
	return m.Run()
}

func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	prefix = "tally_test_" + randomHex(4)
	template = prefix + "_tmpl"
	serverURL = os.Getenv(EnvURL)
	switch {
	case engine == Citus:
		return setupCitus(ctx)
	case serverURL == "":
		dir, err := os.MkdirTemp("", "tally-pgtest-")
		if err != nil {
			return err
		}
		tmpDir = dir
		c, err := pgcluster.Start(ctx, filepath.Join(dir, "pg"), pgcluster.Options{Fast: true})
		if err != nil {
			return err
		}
		cluster = c
		serverURL = c.ConnString("postgres")
	}
	if err := execSQL(ctx, "CREATE DATABASE "+pgx.Identifier{template}.Sanitize()); err != nil {
		return err
	}
	return migrate(ctx)
}

// setupCitus starts a private Citus cluster and makes the template a Citus
// database on every node, workers registered, before migrating it: the
// migrations distribute the tables when the citus extension is there.
func setupCitus(ctx context.Context) error {
	if err := pgcluster.FindCitus(""); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tally-pgtest-")
	if err != nil {
		return err
	}
	tmpDir = dir
	c, err := pgcluster.StartCitus(ctx, filepath.Join(dir, "citus"), citusWorkers, pgcluster.Options{Fast: true,
		Settings: citusSettings})
	if err != nil {
		return err
	}
	citus = c
	serverURL = c.ConnString("postgres")
	if err := c.CreateDatabase(ctx, template); err != nil {
		return err
	}
	if err := migrate(ctx); err != nil {
		return err
	}
	// Nobody connects to the template again: clones copy it node by node.
	return c.FreezeTemplate(ctx, template)
}

// citusSettings are the server settings of every node of the test Citus
// cluster.
var citusSettings = map[string]string{
	// Four shards a table rather than 32: two per worker still spread the
	// accounts over both, and each test database is an eighth the
	// relations to clone and to fan out to.
	"citus.shard_count": "4",
	// Shards move online (citus_move_shard_placement, the rebalancer) by
	// logical replication: the source worker decodes its WAL for a
	// publication and the target subscribes to it, so every node needs
	// logical WAL, as a production cluster does. A move takes one slot
	// and one WAL sender on the source and one apply worker on the
	// target; the settings below are PostgreSQL 15's defaults, written
	// out because a move fails without them and the suite moves shards
	// (TestShardMoveWhileIngesting).
	"wal_level":                       "logical",
	"max_replication_slots":           "10",
	"max_wal_senders":                 "10",
	"max_logical_replication_workers": "4",
}

func migrate(ctx context.Context) error {
	pool, err := pgxpool.New(ctx, withDB(serverURL, template))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	return nil
}

func teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inFlight.Wait()
	select {
	case <-spare: // dropped below with the rest
	default:
	}
	defer func() {
		engine, serverURL, cluster, citus, tmpDir, spareOn = "", "", nil, nil, "", false
	}()
	if citus != nil {
		citus.Stop(ctx)
	}
	if cluster != nil {
		cluster.Stop(ctx)
	}
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
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
// ends. It returns a pool on it and its connection string (on Citus, the
// coordinator's).
func NewDB(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	name, err := takeClone()
	if err != nil {
		t.Fatalf("pgtest on %s: clone the template: %v", engine, err)
	}
	connString := withDB(serverURL, name)
	pool, err := pgxpool.New(context.Background(), connString)
	if err != nil {
		t.Fatalf("pgtest on %s: %v", engine, err)
	}
	e, c := engine, citus
	t.Cleanup(func() {
		// The two runs of a test look alike: say which one failed.
		if t.Failed() {
			t.Logf("pgtest: this run was on %s", describe(e))
		}
		pool.Close()
		// In the background: the test has nothing to wait for. The test
		// is over by then, so a failure is only printed; teardown removes
		// a private cluster whole, and sweeps an external server.
		inFlight.Go(func() {
			var err error
			if c != nil {
				err = c.DropDatabase(context.Background(), name)
			} else {
				err = execSQL(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "pgtest on %s: drop test database %s: %v\n", e, name, err)
			}
		})
	})
	return pool, connString
}

// takeClone returns a fresh clone of the template: the spare made ahead,
// or, the first time in a run, one made now. Either way it sets the next
// spare going.
func takeClone() (string, error) {
	spareMu.Lock()
	first := !spareOn
	spareOn = true
	spareMu.Unlock()
	var c cloned
	if first {
		c.name, c.err = clone()
	} else {
		c = <-spare
	}
	inFlight.Go(func() {
		var next cloned
		next.name, next.err = clone()
		spare <- next
	})
	return c.name, c.err
}

// clone makes a new database from the template.
func clone() (string, error) {
	name := prefix + "_" + randomHex(6)
	ctx := context.Background()
	cloneMu.Lock()
	defer cloneMu.Unlock()
	if citus != nil {
		return name, citus.CloneDatabase(ctx, name, template)
	}
	return name, execSQL(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize()))
}

// Engine is the engine the tests are running on: "postgres" or "citus".
func Engine() string { return engine }

// ServerURL is the connection string of the server's maintenance database
// (on Citus, the coordinator's).
func ServerURL() string { return serverURL }

// Cluster is the private plain PostgreSQL cluster the tests run on, or nil
// on an external server and on Citus. Fault tests stop and start it.
func Cluster() *pgcluster.Cluster { return cluster }

// CitusCluster is the private Citus cluster the tests run on, or nil on
// plain PostgreSQL.
func CitusCluster() *pgcluster.CitusCluster { return citus }

func execSQL(ctx context.Context, sql string) error {
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
