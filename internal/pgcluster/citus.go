package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoCitus says, in one line, that the Citus extension is not installed
// for the PostgreSQL server found, and how to get it.
var ErrNoCitus = errors.New("the Citus extension is not installed for this PostgreSQL: install the Citus 13 packages for PostgreSQL 15 (https://docs.citusdata.com) or use the citusdata/citus Docker image")

// CitusCluster is a running private Citus cluster: a coordinator and its
// workers, each its own PostgreSQL under one parent directory, reaching
// each other over the unix sockets in their data directories.
type CitusCluster struct {
	dir         string
	coordinator *Cluster
	workers     []*Cluster
}

// Node directories under the parent: "coordinator", "worker1", "worker2"…
const coordinatorDir, workerDirPrefix = "coordinator", "worker"

// FindCitus reports whether the Citus extension is installed for the
// server binaries in binDir ("" finds them). It returns ErrNoCitus, wrapped
// with where it looked, when it is not.
func FindCitus(binDir string) error {
	if binDir == "" {
		var err error
		if binDir, err = FindBinaries(); err != nil {
			return err
		}
	}
	share, lib, err := extensionDirs(binDir)
	if err != nil {
		return err
	}
	control := filepath.Join(share, "extension", "citus.control")
	so := filepath.Join(lib, "citus.so")
	for _, f := range []string{control, so} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w (no %s)", ErrNoCitus, f)
		}
	}
	return nil
}

// extensionDirs returns the server's share directory and package library
// directory. binDir may hold symlinks (/usr/local/bin/postgres →
// /usr/lib/postgresql/15/bin/postgres): the server finds its extensions
// relative to its real path, so that is where we look too.
func extensionDirs(binDir string) (share, lib string, err error) {
	real, err := filepath.EvalSymlinks(filepath.Join(binDir, "postgres"))
	if err != nil {
		return "", "", fmt.Errorf("resolve the postgres binary: %w", err)
	}
	realBin := filepath.Dir(real)
	if pgConfig := filepath.Join(realBin, "pg_config"); isExec(pgConfig) {
		out, err := exec.Command(pgConfig, "--sharedir", "--pkglibdir").Output()
		if lines := strings.Fields(string(out)); err == nil && len(lines) == 2 {
			return lines[0], lines[1], nil
		}
	}
	// No pg_config beside the server (it is in a -dev package on Debian):
	// Debian's layout, /usr/lib/postgresql/N/{bin,lib} and
	// /usr/share/postgresql/N, else a plain install prefix.
	prefix := filepath.Dir(realBin)
	share = filepath.Join(prefix, "share", "postgresql")
	if v := filepath.Base(prefix); filepath.Base(filepath.Dir(prefix)) == "postgresql" {
		share = filepath.Join("/usr/share/postgresql", v)
	} else if _, err := os.Stat(share); err != nil {
		share = filepath.Join(prefix, "share")
	}
	lib = filepath.Join(prefix, "lib", "postgresql")
	if _, err := os.Stat(lib); err != nil {
		lib = filepath.Join(prefix, "lib")
	}
	return share, lib, nil
}

// StartCitus creates (the first time) and starts a Citus cluster of a
// coordinator and workers workers under dir, and waits until every node
// accepts connections. A directory made before with more workers is
// refused, since those workers hold shards. Databases are made with
// CreateDatabase.
func StartCitus(ctx context.Context, dir string, workers int, opts Options) (*CitusCluster, error) {
	if workers < 1 {
		return nil, fmt.Errorf("a Citus cluster needs at least one worker, not %d", workers)
	}
	if opts.BinDir == "" {
		var err error
		if opts.BinDir, err = FindBinaries(); err != nil {
			return nil, err
		}
	}
	if err := FindCitus(opts.BinDir); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("citus cluster dir: %w", err)
	}
	if had := existingWorkers(dir); had > workers {
		return nil, fmt.Errorf("the Citus cluster in %s has %d workers holding shards: start it with %d workers, not %d", dir, had, had, workers)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create citus cluster dir: %w", err)
	}
	c := &CitusCluster{dir: dir}
	names := []string{coordinatorDir}
	for i := 1; i <= workers; i++ {
		names = append(names, workerDirPrefix+strconv.Itoa(i))
	}
	if err := initByCopy(ctx, dir, names, opts); err != nil {
		return nil, err
	}
	// The nodes are independent servers until a database is prepared:
	// start them side by side.
	started := make([]*Cluster, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			nodeDir := filepath.Join(dir, name)
			started[i], errs[i] = Start(ctx, nodeDir, citusNodeOptions(opts, nodeDir))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, n := range started {
			if n != nil {
				n.Stop(context.WithoutCancel(ctx))
			}
		}
		return nil, fmt.Errorf("start citus cluster: %w", err)
	}
	c.coordinator, c.workers = started[0], started[1:]
	if opts.Logger != nil {
		opts.Logger.Info("private Citus cluster started", "dir", dir, "workers", workers)
	}
	return c, nil
}

// initByCopy creates the first node's cluster and copies its fresh data
// directory for each other node not created yet: one initdb, the costly
// part of a first start, instead of one per node. A node is a plain
// initdb'd cluster until it is started with its settings.
func initByCopy(ctx context.Context, dir string, names []string, opts Options) error {
	first := filepath.Join(dir, names[0])
	if _, err := os.Stat(filepath.Join(first, "PG_VERSION")); err == nil {
		return nil // an existing cluster: a node added later gets its own initdb
	}
	var missing []string
	for _, name := range names[1:] {
		if _, err := os.Stat(filepath.Join(dir, name, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, filepath.Join(dir, name))
		}
	}
	cred, _, err := serverCredential()
	if err != nil {
		return err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := initDir(ctx, first, opts.BinDir, cred, opts.Fast, log); err != nil {
		return err
	}
	for _, node := range missing {
		// Copied beside, then renamed: a half copy never passes for a node.
		tmp := node + ".copying"
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("remove %s: %w", tmp, err)
		}
		if err := os.RemoveAll(node); err != nil { // no PG_VERSION: nothing of value
			return fmt.Errorf("remove %s: %w", node, err)
		}
		// cp -a keeps the server user's ownership and the 0700 modes.
		if out, err := exec.CommandContext(ctx, "cp", "-a", first, tmp).CombinedOutput(); err != nil {
			return fmt.Errorf("copy %s to %s: %w: %s", first, tmp, err, lastLines(out, 5))
		}
		if err := os.Rename(tmp, node); err != nil {
			return fmt.Errorf("copy %s: %w", node, err)
		}
	}
	return nil
}

// citusNodeOptions are opts with the settings every Citus node needs.
func citusNodeOptions(opts Options, nodeDir string) Options {
	settings := map[string]string{
		"shared_preload_libraries": "citus",
		// Loopback over unix sockets: no TLS, and no client certificate
		// read from a home directory the server user may not own.
		"citus.node_conninfo": "sslmode=disable",
		// A node that connects to itself (shard moves, background tasks)
		// does so through its own socket, the name it is registered by.
		"citus.local_hostname": nodeDir,
		// Test databases are cloned node by node (CREATE DATABASE …
		// TEMPLATE on each), never propagated from the coordinator.
		"citus.enable_create_database_propagation": "off",
		// One maintenance daemon per database per node, plus parallel
		// query workers.
		"max_worker_processes":      "64",
		"max_prepared_transactions": "200", // two-phase commits on the workers
		// Online shard moves (citus_move_shard_placement, the rebalancer)
		// copy by logical replication: docs/scale-out.md.
		"wal_level": "logical",
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	opts.Settings = settings
	return opts
}

// existingWorkers counts the initialized worker directories under dir.
func existingWorkers(dir string) int {
	n := 0
	for i := 1; ; i++ {
		if _, err := os.Stat(filepath.Join(dir, workerDirPrefix+strconv.Itoa(i), "PG_VERSION")); err != nil {
			return n
		}
		n++
	}
}

// Dir returns the parent directory of the nodes' data directories.
func (c *CitusCluster) Dir() string { return c.dir }

// Coordinator is the node clients connect to.
func (c *CitusCluster) Coordinator() *Cluster { return c.coordinator }

// Workers are the nodes that hold the shards, in order.
func (c *CitusCluster) Workers() []*Cluster { return c.workers }

// Nodes are the coordinator, then the workers.
func (c *CitusCluster) Nodes() []*Cluster {
	return append([]*Cluster{c.coordinator}, c.workers...)
}

// ConnString returns a URL for database db on the coordinator.
func (c *CitusCluster) ConnString(db string) string { return c.coordinator.ConnString(db) }

// Stop shuts every node down and waits for them. It is safe to call twice.
func (c *CitusCluster) Stop(ctx context.Context) error {
	nodes := c.Nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			if err := n.Stop(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", filepath.Base(n.Dir()), err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Exited is closed as soon as any node's server has ended: the cluster is
// then unusable.
func (c *CitusCluster) Exited() <-chan struct{} {
	done := make(chan struct{})
	var once sync.Once
	for _, n := range c.Nodes() {
		go func() {
			<-n.Exited()
			once.Do(func() { close(done) })
		}()
	}
	return done
}

// CreateDatabase makes db a Citus database on the cluster: the database on
// every node, the citus extension in each, the coordinator's own address
// and the workers registered in the coordinator's metadata. It is
// idempotent, so a restarted cluster (or one with a worker added) is
// brought up to date by calling it again.
func (c *CitusCluster) CreateDatabase(ctx context.Context, db string) error {
	nodes := c.Nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			if err := createCitusDatabase(ctx, n, db); err != nil {
				errs[i] = fmt.Errorf("%s: %w", filepath.Base(n.Dir()), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("create citus database %s: %w", db, err)
	}
	if err := c.readdress(ctx, db); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, c.ConnString(db))
	if err != nil {
		return fmt.Errorf("connect to the coordinator: %w", err)
	}
	defer conn.Close(ctx)
	// Nodes are named by their socket directory: libpq takes a host that
	// starts with a slash for a unix socket directory.
	if _, err := conn.Exec(ctx, `SELECT citus_set_coordinator_host($1, $2)`, c.coordinator.socket, 5432); err != nil {
		return fmt.Errorf("register the coordinator of %s: %w", db, err)
	}
	for _, w := range c.workers {
		if _, err := conn.Exec(ctx, `SELECT citus_add_node($1, $2)`, w.socket, 5432); err != nil {
			return fmt.Errorf("register %s in %s: %w", filepath.Base(w.Dir()), db, err)
		}
	}
	return nil
}

// readdress renames, on every node's copy of the metadata of db, the
// nodes registered under another parent directory: the cluster was moved,
// and a node is known by its socket directory. Citus's own
// citus_update_node would first have to reach the other nodes at their
// old addresses. Shard placements refer to node groups, not names, so
// they stay valid.
func (c *CitusCluster) readdress(ctx context.Context, db string) error {
	var bases, paths []string
	for _, n := range c.Nodes() {
		bases, paths = append(bases, filepath.Base(n.Dir())), append(paths, n.socket)
	}
	nodes := c.Nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, n.ConnString(db))
			if err != nil {
				errs[i] = fmt.Errorf("%s: connect: %w", filepath.Base(n.Dir()), err)
				return
			}
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, `UPDATE pg_dist_node d SET nodename = m.path
				FROM unnest($1::text[], $2::text[]) m(base, path)
				WHERE d.nodename LIKE '/%' AND d.nodename <> m.path AND d.nodename ~ ('/' || m.base || '$')`, bases, paths)
			if err != nil {
				errs[i] = fmt.Errorf("%s: re-address the nodes: %w", filepath.Base(n.Dir()), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("citus database %s: %w", db, err)
	}
	return nil
}

// createCitusDatabase creates db on one node unless it exists, and the
// citus extension in it.
func createCitusDatabase(ctx context.Context, n *Cluster, db string) error {
	conn, err := pgx.Connect(ctx, n.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, db).Scan(&exists); err != nil {
		return fmt.Errorf("look up database: %w", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
	}
	dbConn, err := pgx.Connect(ctx, n.ConnString(db))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", db, err)
	}
	defer dbConn.Close(ctx)
	if _, err := dbConn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS citus`); err != nil {
		return fmt.Errorf("create extension citus: %w", err)
	}
	return nil
}

// CloneDatabase creates database name from template on every node, with
// no propagation through Citus: shard placements are found by node address
// and database name, so a copy of every node's template is a consistent
// Citus database of its own. It is much faster than distributing the
// tables again. The template must have no open sessions on any node; see
// FreezeTemplate. FILE_COPY copies the files and checkpoints, which
// measured faster here than WAL-logging every block of a database of
// several hundred shard relations.
func (c *CitusCluster) CloneDatabase(ctx context.Context, name, template string) error {
	return c.eachNode(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize()))
}

// DropDatabase drops db on every node, ending its sessions.
func (c *CitusCluster) DropDatabase(ctx context.Context, db string) error {
	// All nodes at once: connections are shut off on each before its
	// sessions end, so a coordinator session cannot reopen one on a worker.
	nodes := c.Nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			if err := dropDatabase(ctx, n, db); err != nil {
				errs[i] = fmt.Errorf("%s: %w", filepath.Base(n.Dir()), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("drop %s: %w", db, err)
	}
	return nil
}

// dropDatabase drops db on node n. DROP DATABASE … WITH (FORCE) ends the
// client sessions but waits for Citus's maintenance daemon, which
// reconnects: connections are shut off first, then every session ended.
func dropDatabase(ctx context.Context, n *Cluster, db string) error {
	id := pgx.Identifier{db}.Sanitize()
	err := execOn(ctx, n, `SET citus.enable_ddl_propagation = off; ALTER DATABASE `+id+` WITH ALLOW_CONNECTIONS false`)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name: gone already
			return nil
		}
		return err
	}
	if err := endSessions(ctx, n, db); err != nil {
		return err
	}
	return execOn(ctx, n, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)")
}

// FreezeTemplate readies db to be cloned: no new connections, and the
// sessions it has ended, Citus's maintenance daemon among them, on every
// node. CREATE DATABASE … TEMPLATE refuses a template in use, after
// waiting up to 5 s for it.
func (c *CitusCluster) FreezeTemplate(ctx context.Context, db string) error {
	// ALTER DATABASE is kept local: each node is frozen by its own statement.
	freeze := `SET citus.enable_ddl_propagation = off; ALTER DATABASE ` + pgx.Identifier{db}.Sanitize() + ` WITH ALLOW_CONNECTIONS false`
	if err := c.eachNode(ctx, freeze); err != nil {
		return fmt.Errorf("freeze template %s: %w", db, err)
	}
	nodes := c.Nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			if err := endSessions(ctx, n, db); err != nil {
				errs[i] = fmt.Errorf("%s: %w", filepath.Base(n.Dir()), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("freeze template %s: %w", db, err)
	}
	return nil
}

// endSessions terminates the sessions on database db of node n and waits
// until they are gone: a terminated maintenance daemon takes a moment.
func endSessions(ctx context.Context, n *Cluster, db string) error {
	conn, err := pgx.Connect(ctx, n.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var left int
		err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, db).Scan(&left)
		if err != nil {
			return fmt.Errorf("end the sessions on %s: %w", db, err)
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d sessions on %s did not end within 30s", left, db)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *CitusCluster) eachNode(ctx context.Context, sql string) error {
	nodes := c.Nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			if err := execOn(ctx, n, sql); err != nil {
				errs[i] = fmt.Errorf("%s: %w", filepath.Base(n.Dir()), err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// execOn runs sql in the maintenance database of node n.
func execOn(ctx context.Context, n *Cluster, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(strings.Fields(sql), " "), err)
	}
	return nil
}
