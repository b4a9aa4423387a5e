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
