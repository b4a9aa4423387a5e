package pgcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestFindBinaries(t *testing.T) {
	dir, err := FindBinaries()
	if err != nil {
		t.Fatalf("FindBinaries on this machine: %v", err)
	}
	if !isExec(filepath.Join(dir, "postgres")) {
		t.Fatalf("%s has no postgres", dir)
	}
	_, err = findIn([]string{t.TempDir(), ""})
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("empty dirs: %v", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "apt-get install postgresql") || !strings.Contains(msg, "DATABASE_URL") {
		t.Fatalf("message %q: want one line naming apt-get install postgresql and DATABASE_URL", msg)
	}
}

func query(ctx context.Context, c *Cluster, sql string) error {
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// TestLifecycle starts a cluster, stops it, restarts it on the same
// directory (no initdb), and recovers from a SIGKILL that leaves a stale
// postmaster.pid.
func TestLifecycle(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "pg")
	c, err := Start(ctx, dir, Options{Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.ConnString("x"), "host=") {
		t.Fatalf("conn string %s", c.ConnString("x"))
	}
	if err := query(ctx, c, `CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	// No TCP: only the unix socket in the data dir.
	var listen string
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	conn.QueryRow(ctx, `SHOW listen_addresses`).Scan(&listen)
	conn.Close(ctx)
	if listen != "" {
		t.Fatalf("listen_addresses = %q, want none", listen)
	}
	if _, err := os.Stat(filepath.Join(dir, ".s.PGSQL.5432")); err != nil {
		t.Fatalf("no socket in the data dir: %v", err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := query(ctx, c, `SELECT 1`); err == nil {
		t.Fatal("connected to a stopped cluster")
	}

	version, _ := os.Stat(filepath.Join(dir, "PG_VERSION"))
	c, err = Start(ctx, dir, Options{Fast: true})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if again, _ := os.Stat(filepath.Join(dir, "PG_VERSION")); !again.ModTime().Equal(version.ModTime()) {
		t.Fatal("restart ran initdb again")
	}
	if err := query(ctx, c, `SELECT x FROM kept`); err != nil {
		t.Fatalf("data lost across restart: %v", err)
	}

	// A second Start on a live cluster is refused clearly.
	if _, err := Start(ctx, dir, Options{Fast: true}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Start on a running cluster: %v", err)
	}

	// Crash: kill the postmaster and its children; postmaster.pid stays.
	pid := c.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-c.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("postmaster did not die")
	}
	waitGroupGone(t, pid)
	if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); err != nil {
		t.Fatalf("expected a stale postmaster.pid: %v", err)
	}
	c, err = Start(ctx, dir, Options{Fast: true})
	if err != nil {
		t.Fatalf("start after a crash: %v", err)
	}
	defer c.Stop(context.Background())
	if err := query(ctx, c, `SELECT x FROM kept`); err != nil {
		t.Fatalf("after crash recovery: %v", err)
	}
}

// waitGroupGone waits until no process of the killed postmaster's process
// group is left (SIGKILL is delivered asynchronously).
func waitGroupGone(t *testing.T, pgid int) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(-pgid, 0) != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the killed cluster's processes are still alive")
}

func TestSocketPathTooLong(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	_, err := Start(t.Context(), dir, Options{Fast: true})
	if err == nil || !strings.Contains(err.Error(), "too deep") {
		t.Fatalf("err = %v, want a clear socket path error", err)
	}
}

// TestCitus starts a coordinator and two workers, makes a Citus database,
// distributes a table across both workers, clones the database node by
// node, and restarts the cluster on the same directories.
func TestCitus(t *testing.T) {
	if err := FindCitus(""); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "citus")
	begin := time.Now()
	c, err := StartCitus(ctx, dir, 2, Options{Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	if err := c.CreateDatabase(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	t.Logf("coordinator + 2 workers ready with a database in %v", time.Since(begin).Round(time.Millisecond))
	conn, err := pgx.Connect(ctx, c.ConnString("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var workers int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary' AND groupid > 0 AND isactive`).Scan(&workers); err != nil || workers != 2 {
		t.Fatalf("%d workers registered (%v), want 2", workers, err)
	}
	// Online shard moves replicate logically: every node needs it.
	var logical int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM run_command_on_all_nodes('SHOW wal_level') WHERE result = 'logical'`).Scan(&logical); err != nil || logical != 3 {
		t.Fatalf("%d of 3 nodes have wal_level logical (%v)", logical, err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE t (account_sid text PRIMARY KEY, n int);
		SELECT create_distributed_table('t', 'account_sid');
		INSERT INTO t SELECT 'AC' || i, i FROM generate_series(1, 100) i`); err != nil {
		t.Fatal(err)
	}
	var nodes int
	if err := conn.QueryRow(ctx, `SELECT count(DISTINCT nodename) FROM citus_shards WHERE table_name = 't'::regclass`).Scan(&nodes); err != nil || nodes != 2 {
		t.Fatalf("shards on %d nodes (%v), want 2", nodes, err)
	}
	conn.Close(ctx)

	// A clone made on every node is a working Citus database of its own.
	if err := c.FreezeTemplate(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	if err := c.CloneDatabase(ctx, "copy", "app"); err != nil {
		t.Fatal(err)
	}
	t.Logf("clone on 3 nodes in %v", time.Since(begin).Round(time.Millisecond))
	cp, err := pgx.Connect(ctx, c.ConnString("copy"))
	if err != nil {
		t.Fatal(err)
	}
	var sum int
	if _, err := cp.Exec(ctx, `UPDATE t SET n = n + 1 WHERE account_sid = 'AC7'`); err != nil {
		t.Fatal(err)
	}
	if err := cp.QueryRow(ctx, `SELECT sum(n) FROM t`).Scan(&sum); err != nil || sum != 5051 {
		t.Fatalf("sum in the clone = %d (%v), want 5051", sum, err)
	}
	cp.Close(ctx)
	if err := c.DropDatabase(ctx, "copy"); err != nil {
		t.Fatal(err)
	}

	// Restart after the parent directory moved: no initdb, data kept, and
	// CreateDatabase again re-addresses the nodes.
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(filepath.Dir(dir), "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	dir = moved
	begin = time.Now()
	c, err = StartCitus(ctx, dir, 2, Options{Fast: true})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer c.Stop(context.Background())
	t.Logf("restart in %v", time.Since(begin).Round(time.Millisecond))
	if _, err := StartCitus(ctx, dir, 1, Options{Fast: true}); err == nil || !strings.Contains(err.Error(), "2 workers") {
		t.Fatalf("start with fewer workers than hold shards: %v", err)
	}
	for _, n := range c.Nodes() {
		if err := execOn(ctx, n, `ALTER DATABASE app WITH ALLOW_CONNECTIONS true`); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CreateDatabase(ctx, "app"); err != nil {
		t.Fatalf("CreateDatabase on a restarted cluster: %v", err)
	}
	conn, err = pgx.Connect(ctx, c.ConnString("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT sum(n) FROM t`).Scan(&sum); err != nil || sum != 5050 {
		t.Fatalf("sum after restart = %d (%v), want 5050", sum, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_dist_node WHERE nodename NOT LIKE $1 || '/%'`, dir).Scan(&workers); err != nil || workers != 0 {
		t.Fatalf("%d nodes still registered under the old directory (%v)", workers, err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO t VALUES ('AC101', 101)`); err != nil {
		t.Fatalf("write after the move: %v", err)
	}
}

func TestFindCitusMissing(t *testing.T) {
	bin := t.TempDir()
	for _, name := range []string{"postgres", "initdb"} {
		os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755)
	}
	err := FindCitus(bin)
	if !errors.Is(err, ErrNoCitus) || !strings.Contains(err.Error(), "citusdata/citus Docker image") {
		t.Fatalf("FindCitus without citus: %v", err)
	}
	if _, err := StartCitus(t.Context(), t.TempDir(), 2, Options{BinDir: bin}); !errors.Is(err, ErrNoCitus) {
		t.Fatalf("StartCitus without citus: %v", err)
	}
}
