package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/tallyhq/tally/internal/bench"
	"github.com/tallyhq/tally/internal/keys"
	"github.com/tallyhq/tally/internal/pgcluster"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

type benchOptions struct {
	events, runs, clients     int
	duration                  time.Duration
	reportEvents, reportUsers int
	dataDir                   string
	workers, accounts         int
	engines                   string
	readEvents, readUsers     int
	serverLogs                string
	alerts, alertAccounts     int
	// webhookCA is the alerts bench's receiver certificate, which the
	// server trusts through SSL_CERT_FILE.
	webhookCA string
}

func (e *env) benchCommand() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench ingest|tokens|report|reads|alerts|all",
		Short: "Measure ingest, tokens, reports and reads on this machine, each beside its yardstick in the same run",
		Long: `bench starts a private PostgreSQL (or uses DATABASE_URL), runs tally serve as a
separate process on loopback and drives it from this process. Each figure is
the median of --runs runs with the min and max; every comparison is a ratio
taken in the same run: ingest beside a raw COPY of the same rows into a table
with the same idempotency index, tokens beside GET /healthz, the monthly job
beside a count(DISTINCT) scan of the month's events.

With --workers N the database is a private Citus cluster (a coordinator and N
workers, the tables distributed by account as tally dev --workers makes it);
the raw COPY then goes to a table distributed by account_sid beside events.
--engines postgres,citus runs both side by side in one invocation, runs
alternating between them, and prints each figure per engine and the ratio
Citus / PostgreSQL of each run. The CPU each database node, the server, the
load generator and the whole machine spent per event is read from /proc.

reads measures the latency of a provisional report and of identity
statistics of one account (--read-events events of --read-users users) while
nothing else runs, while another account ingests as fast as it can and
while the same account does, each for --duration, and prints p50 and p99.

alerts measures JSON ingest (bodies of 100 events, in the current month, over
--alert-accounts accounts) with no alert, then with --alerts alerts spread
over those accounts that fire one after another as the figures grow, their
webhooks delivered to a local HTTPS receiver; the order alternates between
runs, and the ratio is taken run by run.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"ingest", "tokens", "report", "reads", "alerts", "all"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.bench(cmd.Context(), args[0], o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.events, "events", 2_000_000, "events per ingest run")
	f.IntVar(&o.runs, "runs", 3, "runs per figure")
	f.IntVar(&o.clients, "clients", 4, "concurrent clients")
	f.DurationVar(&o.duration, "duration", 5*time.Second, "length of each token measurement and of each read scenario")
	f.IntVar(&o.reportEvents, "report-events", 10_000_000, "events in the report month")
	f.IntVar(&o.reportUsers, "report-users", 1_000_000, "distinct users in the report month")
	f.StringVar(&o.dataDir, "data-dir", "", "where to put the private clusters (default: a temporary dir)")
	f.IntVar(&o.workers, "workers", 0, "Citus workers: run on a private Citus cluster of a coordinator and this many workers (default 2 when --engines names citus)")
	f.StringVar(&o.engines, "engines", "", "postgres, citus or postgres,citus: the engines to run side by side (default: citus with --workers, else postgres)")
	f.IntVar(&o.accounts, "accounts", 1, "accounts the ingest bodies are spread over, round robin (on Citus, spread evenly over the workers)")
	f.IntVar(&o.readEvents, "read-events", 1_000_000, "events of the account read by the reads bench")
	f.IntVar(&o.readUsers, "read-users", 100_000, "distinct users of the account read by the reads bench")
	f.IntVar(&o.alerts, "alerts", 1000, "alerts of the alerts bench, spread over --alert-accounts accounts")
	f.IntVar(&o.alertAccounts, "alert-accounts", 100, "accounts the alerts bench ingests into and spreads its alerts over")
	f.StringVar(&o.serverLogs, "server-logs", "", "write each engine's tally serve log to tally-serve-ENGINE.log in this dir")
	return cmd
}

// benchEngine is one database engine under test, with its own tally
// server process.
type benchEngine struct {
	name    string // postgres or citus
	label   string // for the tables: "PostgreSQL", "Citus (2 workers)"
	version string
	pool    *pgxpool.Pool
	store   *postgres.Store
	box     *secrets.Box
	env     *bench.Env
	stops   []func()
}

func (g *benchEngine) close() {
	for i := len(g.stops) - 1; i >= 0; i-- {
		g.stops[i]()
	}
}

// parseEngines is the list of engines to run and the Citus workers.
func parseEngines(o benchOptions) ([]string, int, error) {
	spec := o.engines
	if spec == "" {
		spec = "postgres"
		if o.workers > 0 {
			spec = "citus"
		}
	}
	var names []string
	seen := map[string]bool{}
	for _, n := range strings.Split(spec, ",") {
		n = strings.TrimSpace(n)
		if n != "postgres" && n != "citus" {
			return nil, 0, fmt.Errorf("--engines %q: want postgres, citus or postgres,citus", spec)
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	workers := o.workers
	if workers < 0 {
		return nil, 0, fmt.Errorf("--workers %d: want 1 or more", workers)
	}
	if seen["citus"] && workers == 0 {
		workers = 2
	}
	return names, workers, nil
}

func (e *env) bench(ctx context.Context, what string, o benchOptions) error {
	out := e.stdout
	var receiver *bench.Receiver
	names, workers, err := parseEngines(o)
	if err != nil {
		return err
	}
	if o.accounts < 1 {
		return fmt.Errorf("--accounts %d: want 1 or more", o.accounts)
	}
	dbURL := e.cfg.databaseURL
	if dbURL != "" && len(names) > 1 {
		return errors.New("DATABASE_URL names one database: run one engine at a time, or unset it for private clusters")
	}
	dir := o.dataDir
	if dir == "" && dbURL == "" {
		tmp, err := os.MkdirTemp("", "tally-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if what == "alerts" || what == "all" {
		if o.alerts < 1 || o.alertAccounts < 1 {
			return fmt.Errorf("--alerts %d, --alert-accounts %d: want 1 or more", o.alerts, o.alertAccounts)
		}
		// Before the servers start: they are told to trust its certificate.
		caDir := dir
		if caDir == "" {
			tmp, err := os.MkdirTemp("", "tally-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			caDir = tmp
		}
		recv, err := bench.StartReceiver(caDir)
		if err != nil {
			return err
		}
		defer recv.Close()
		o.webhookCA = recv.CAFile
		receiver = recv
	}
	var engines []*benchEngine
	defer func() {
		for _, g := range engines {
			g.close()
		}
	}()
	for _, name := range names {
		g, err := e.startEngine(ctx, name, workers, dbURL, dir, o)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		engines = append(engines, g)
	}

	var labels []string
	for _, g := range engines {
		labels = append(labels, g.label+" "+g.version)
	}
	fmt.Fprintf(out, "# tally bench %s — %s, %d CPUs, %s, %d runs, %d clients, %d account(s); load average %s\n\n",
		what, runtime.Version(), runtime.NumCPU(), strings.Join(labels, " beside "), o.runs, o.clients, o.accounts, bench.LoadAvg())

	if what == "ingest" || what == "all" {
		if err := benchIngest(ctx, e, engines, o); err != nil {
			return err
		}
	}
	if what == "tokens" || what == "all" {
		for _, g := range engines {
			if err := benchTokens(ctx, e, g, o); err != nil {
				return err
			}
		}
	}
	if what == "report" || what == "all" {
		if err := benchReport(ctx, e, engines, o); err != nil {
			return err
		}
	}
	if what == "reads" || what == "all" {
		if err := benchReads(ctx, e, engines, o); err != nil {
			return err
		}
	}
	if what == "alerts" || what == "all" {
		if err := benchAlerts(ctx, e, engines, receiver, o); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "Load average at the end: %s\n", bench.LoadAvg())
	return nil
}

// benchSettings are the private servers' settings: durable, as in
// production (fsync and synchronous_commit stay on), with memory and WAL
// room for tens of millions of rows. A Citus cluster is three or more
// servers on one machine: each gets half the plain server's buffers.
func benchSettings(citus bool) map[string]string {
	buffers := "2GB"
	if citus {
		buffers = "1GB"
	}
	return map[string]string{"shared_buffers": buffers, "max_wal_size": "8GB", "checkpoint_timeout": "30min", "work_mem": "64MB"}
}

// startEngine starts the database of one engine (a private cluster under
// dir, or dbURL), migrates it, makes the bench's accounts and starts a
// tally server on it.
func (e *env) startEngine(ctx context.Context, name string, workers int, dbURL, dir string, o benchOptions) (*benchEngine, error) {
	g := &benchEngine{name: name, label: "PostgreSQL"}
	var nodes []bench.Node
	const db = "tally_bench"
	switch {
	case dbURL != "":
		g.label = "the database of DATABASE_URL"
	case name == "citus":
		g.label = fmt.Sprintf("Citus (%d workers)", workers)
		cluster, err := pgcluster.StartCitus(ctx, filepath.Join(dir, "citus"), workers, pgcluster.Options{Settings: benchSettings(true)})
		if err != nil {
			return nil, err
		}
		g.stops = append(g.stops, func() { cluster.Stop(context.WithoutCancel(ctx)) })
		if err := cluster.CreateDatabase(ctx, db); err != nil {
			g.close()
			return nil, err
		}
		dbURL = cluster.ConnString(db)
		for i, n := range cluster.Nodes() {
			nodeName := "coordinator"
			if i > 0 {
				nodeName = fmt.Sprintf("worker%d", i)
			}
			nodes = append(nodes, bench.Node{Name: nodeName, URL: n.ConnString(db), DataDir: n.Dir()})
		}
	default:
		cluster, err := pgcluster.Start(ctx, filepath.Join(dir, "postgres"), pgcluster.Options{Settings: benchSettings(false)})
		if err != nil {
			return nil, err
		}
		g.stops = append(g.stops, func() { cluster.Stop(context.WithoutCancel(ctx)) })
		if err := createDatabase(ctx, cluster.ConnString("postgres"), db); err != nil {
			g.close()
			return nil, err
		}
		dbURL = cluster.ConnString(db)
		nodes = []bench.Node{{Name: "postgres", URL: dbURL, DataDir: cluster.Dir()}}
	}
	pool, err := openPool(ctx, dbURL)
	if err != nil {
		g.close()
		return nil, err
	}
	g.pool = pool
	g.stops = append(g.stops, pool.Close)
	if err := postgres.Migrate(ctx, pool); err != nil {
		g.close()
		return nil, err
	}
	var citus bool
	pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')`).Scan(&citus)
	pool.QueryRow(ctx, `SHOW server_version`).Scan(&g.version)
	g.store = postgres.New(pool, time.Now)
	master := secrets.NewMasterKey()
	key, _ := secrets.ParseMasterKey(master)
	g.box, _ = secrets.NewBox(key)
	accounts, err := benchAccounts(ctx, g, o.accounts, citus)
	if err != nil {
		g.close()
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		g.close()
		return nil, err
	}
	var serverLog io.Writer
	if o.serverLogs != "" {
		f, err := os.Create(filepath.Join(o.serverLogs, "tally-serve-"+name+".log"))
		if err != nil {
			g.close()
			return nil, err
		}
		g.stops = append(g.stops, func() { f.Close() })
		serverLog = f
	}
	serverEnv := cleanBenchEnv(dbURL, master)
	if o.webhookCA != "" {
		// The alerts bench's receiver is on loopback, its certificate its own.
		serverEnv = append(serverEnv, "TALLY_WEBHOOK_ALLOW_PRIVATE=1", "SSL_CERT_FILE="+o.webhookCA)
	}
	server, base, err := bench.StartServer(ctx, self, serverEnv, serverLog)
	if err != nil {
		g.close()
		return nil, err
	}
	g.stops = append(g.stops, func() { server.Process.Signal(os.Interrupt); server.Wait() })
	a := accounts[0]
	g.env = &bench.Env{BaseURL: base, Pool: pool, AccountSID: a.SID, KeySID: a.KeySID, Secret: a.Secret, Server: server,
		Accounts: accounts, Nodes: nodes, Citus: citus}
	return g, nil
}

// newBenchAccount creates an account and an admin key for it.
func newBenchAccount(ctx context.Context, g *benchEngine, name string) (bench.Account, error) {
	acct, err := g.store.CreateAccount(ctx, name, false)
	if err != nil {
		return bench.Account{}, err
	}
	k, secret, err := keys.Create(ctx, g.store, g.box, acct.SID, usage.RoleAdmin, "bench")
	if err != nil {
		return bench.Account{}, err
	}
	return bench.Account{SID: acct.SID, KeySID: k.SID, Secret: secret}, nil
}

// workerOf is the node holding an account's shards on Citus.
func workerOf(ctx context.Context, g *benchEngine, accountSID string) (string, error) {
	var node string
	err := g.pool.QueryRow(ctx, `SELECT nodename FROM pg_dist_shard_placement
		WHERE shardid = get_shard_id_for_distribution_column('events', $1::text)`, accountSID).Scan(&node)
	return node, err
}

// benchAccounts makes n accounts for the ingest benches. On Citus they
// are spread evenly over the workers: accounts are made until each worker
// holds its share (an account's worker is the hash of its SID).
func benchAccounts(ctx context.Context, g *benchEngine, n int, citus bool) ([]bench.Account, error) {
	var out []bench.Account
	if !citus {
		for i := range n {
			a, err := newBenchAccount(ctx, g, fmt.Sprintf("Bench %d", i+1))
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
		return out, nil
	}
	var workers int
	if err := g.pool.QueryRow(ctx, `SELECT count(*) FROM pg_dist_node WHERE shouldhaveshards AND noderole = 'primary' AND groupid <> 0`).Scan(&workers); err != nil {
		return nil, err
	}
	share := (n + max(workers, 1) - 1) / max(workers, 1)
	held := map[string]int{}
	for tries := 0; len(out) < n; tries++ {
		if tries > 50*n {
			return nil, fmt.Errorf("could not spread %d accounts over %d workers", n, workers)
		}
		a, err := newBenchAccount(ctx, g, fmt.Sprintf("Bench %d", tries+1))
		if err != nil {
			return nil, err
		}
		w, err := workerOf(ctx, g, a.SID)
		if err != nil {
			return nil, err
		}
		if held[w] < share {
			held[w]++
			out = append(out, a)
		}
	}
	return out, nil
}

// cleanBenchEnv is the server's environment: limits lifted (the bench
// measures throughput, not the limiter) and no scheduler runs.
func cleanBenchEnv(dbURL, master string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TALLY_PPROF_ADDR=") || strings.HasPrefix(kv, "TALLY_FOLD_INTERVAL=") ||
			strings.HasPrefix(kv, "TALLY_MAX_PENDING=") {
			env = append(env, kv) // profile the server, or try another fold interval or bound, on request
			continue
		}
		if strings.HasPrefix(kv, "TALLY_") || strings.HasPrefix(kv, "DATABASE_URL=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "DATABASE_URL="+dbURL, "TALLY_MASTER_KEY="+master,
		"TALLY_INGEST_RATE=1000000000", "TALLY_TOKEN_RATE=1000000000", "TALLY_REPORT_INTERVAL=24h")
}

// ingestRun is what one ingest run of one engine measured.
type ingestRun struct {
	json, replay, nd, copy, fold, folded float64
	// cpu is spent over the JSON ingest and the fold left after it: the
	// whole cost of bringing the events into the rollup.
	cpu bench.CPUReading
	// growth is what each node's database grew by, per event: the JSON
	// ingest folded and vacuumed, against the emptied tables before it.
	growth []float64
	rss    float64
}

func ingestOnce(ctx context.Context, g *benchEngine, w bench.Workload, jsonBodies, ndBodies [][]byte, o benchOptions) (ingestRun, error) {
	env := g.env
	var r ingestRun
	if err := env.Reset(ctx); err != nil {
		return r, err
	}
	// What TRUNCATE left behind, so that the growth is the data alone.
	if _, err := env.Pool.Exec(ctx, `VACUUM rollup_pending`); err != nil {
		return r, fmt.Errorf("vacuum rollup_pending: %w", err)
	}
	before, err := env.NodeSizes(ctx)
	if err != nil {
		return r, err
	}
	cpu0 := env.ReadCPU()
	d, totals, err := env.Post(ctx, jsonBodies, false, o.clients)
	if err != nil {
		return r, fmt.Errorf("json ingest: %w", err)
	}
	if totals[0] != int64(o.events) {
		return r, fmt.Errorf("json ingest accepted %d of %d", totals[0], o.events)
	}
	r.json = float64(o.events) / d.Seconds()
	f, err := env.Fold(ctx)
	if err != nil {
		return r, fmt.Errorf("fold: %w", err)
	}
	r.cpu = env.ReadCPU().Sub(cpu0)
	r.fold, r.folded = f.Seconds(), float64(o.events)/(d+f).Seconds()
	users, sum, err := env.Counts(ctx)
	if err != nil {
		return r, err
	}
	// The fold leaves rollup_pending empty, its rows deleted: VACUUM gives
	// those pages back, as autovacuum does in service, so the size is the
	// data, not the backlog just folded.
	if _, err := env.Pool.Exec(ctx, `VACUUM rollup_pending`); err != nil {
		return r, fmt.Errorf("vacuum rollup_pending: %w", err)
	}
	if after, err := env.NodeSizes(ctx); err == nil {
		for i := range after {
			r.growth = append(r.growth, float64(after[i]-before[i])/float64(o.events))
		}
	}
	d, totals, err = env.Post(ctx, jsonBodies, false, o.clients)
	if err != nil {
		return r, fmt.Errorf("replay: %w", err)
	}
	users2, sum2, _ := env.Counts(ctx)
	if totals[1] != int64(o.events) || users2 != users || sum2 != sum {
		return r, fmt.Errorf("replay changed counts: duplicates %d, users %d→%d, events %d→%d", totals[1], users, users2, sum, sum2)
	}
	r.replay = float64(o.events) / d.Seconds()
	if err := env.Reset(ctx); err != nil {
		return r, err
	}
	d, totals, err = env.Post(ctx, ndBodies, true, o.clients)
	if err != nil || totals[0] != int64(o.events) {
		return r, fmt.Errorf("ndjson ingest: accepted %d: %v", totals[0], err)
	}
	r.nd = float64(o.events) / d.Seconds()
	// The raw COPY runs alone: nothing left for the server to fold.
	if _, err := env.Fold(ctx); err != nil {
		return r, fmt.Errorf("fold: %w", err)
	}
	d, err = env.RawCopy(ctx, w, 1000, o.clients)
	if err != nil {
		return r, fmt.Errorf("raw copy: %w", err)
	}
	r.copy = float64(o.events) / d.Seconds()
	r.rss = bench.PeakRSS(env.Server.Process.Pid)
	return r, nil
}

func benchIngest(ctx context.Context, e *env, engines []*benchEngine, o benchOptions) error {
	out := e.stdout
	w := bench.NewWorkload(o.events, "bench", 1)
	jsonBodies := w.Bodies(1000, false)
	ndBodies := w.Bodies(10000, true)
	runs := make([][]ingestRun, len(engines))
	for r := 0; r < o.runs; r++ {
		// Engines alternate within a run, and which goes first alternates
		// between runs, so that both see the same machine.
		for k := range engines {
			i := k
			if r%2 == 1 {
				i = len(engines) - 1 - k
			}
			g := engines[i]
			load := bench.LoadAvg()
			res, err := ingestOnce(ctx, g, w, jsonBodies, ndBodies, o)
			if err != nil {
				return fmt.Errorf("%s: %w", g.label, err)
			}
			runs[i] = append(runs[i], res)
			fmt.Fprintf(e.stderr, "run %d, %s: json %.0f/s, replay %.0f/s, ndjson %.0f/s, raw copy %.0f/s, fold after json %.2fs (json through fold %.0f/s); load %s → %s\n",
				r+1, g.label, res.json, res.replay, res.nd, res.copy, res.fold, res.folded, load, bench.LoadAvg())
		}
	}
	pick := func(rs []ingestRun, f func(ingestRun) float64) []float64 {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return xs
	}
	perEvent := func(d time.Duration) float64 { return micros(d) / float64(o.events) }
	for i, g := range engines {
		rs := runs[i]
		fmt.Fprintf(out, "## Ingest over HTTP, %s: %d events, JSON batches of 1000 / NDJSON bodies of 10 000, %d clients, %d account(s)\n\n",
			g.label, o.events, o.clients, len(g.env.Accounts))
		fmt.Fprintf(out, "| figure | median (min, max) |\n|---|---|\n")
		rows := []struct {
			name string
			f    func(ingestRun) float64
		}{
			{"JSON ingest, events/s", func(r ingestRun) float64 { return r.json }},
			{"NDJSON ingest, events/s", func(r ingestRun) float64 { return r.nd }},
			{"rollup fold left after the last JSON body, s", func(r ingestRun) float64 { return r.fold }},
			{"JSON ingest until the rollup holds every event, events/s", func(r ingestRun) float64 { return r.folded }},
			{"replay of duplicates, events/s", func(r ingestRun) float64 { return r.replay }},
			{"raw COPY, same rows and idempotency index, rows/s", func(r ingestRun) float64 { return r.copy }},
			{"JSON ingest / raw COPY", func(r ingestRun) float64 { return r.json / r.copy }},
			{"NDJSON ingest / raw COPY", func(r ingestRun) float64 { return r.nd / r.copy }},
			{"replay / first ingest", func(r ingestRun) float64 { return r.replay / r.json }},
			{"CPU µs per event, JSON ingest + fold: tally server", func(r ingestRun) float64 { return perEvent(r.cpu.Server) }},
		}
		for n, node := range g.env.Nodes {
			rows = append(rows, struct {
				name string
				f    func(ingestRun) float64
			}{"CPU µs per event, JSON ingest + fold: " + node.Name, func(r ingestRun) float64 { return perEvent(r.cpu.Nodes[n]) }})
		}
		rows = append(rows, []struct {
			name string
			f    func(ingestRun) float64
		}{
			{"CPU µs per event, JSON ingest + fold: load generator", func(r ingestRun) float64 { return perEvent(r.cpu.Client) }},
			{"CPU µs per event, JSON ingest + fold: machine (all of it)", func(r ingestRun) float64 { return perEvent(r.cpu.Machine) }},
		}...)
		for _, row := range rows {
			fmt.Fprintf(out, "| %s | %s |\n", row.name, bench.Summarize(pick(rs, row.f)))
		}
		sizeNames := []string{"database"}
		if len(g.env.Nodes) > 0 {
			sizeNames = nil
			for _, n := range g.env.Nodes {
				sizeNames = append(sizeNames, n.Name)
			}
		}
		for n, name := range sizeNames {
			fmt.Fprintf(out, "| growth per event after JSON ingest and fold, bytes: %s | %s |\n", name,
				bench.Summarize(pick(rs, func(r ingestRun) float64 {
					if n < len(r.growth) {
						return r.growth[n]
					}
					return 0
				})))
		}
		fmt.Fprintf(out, "| server peak RSS, MiB | %.0f |\n\n", rs[len(rs)-1].rss)
	}
	if len(engines) == 2 {
		a, b := runs[0], runs[1]
		fmt.Fprintf(out, "## Ingest, %s / %s, run by run\n\n", engines[1].label, engines[0].label)
		fmt.Fprintf(out, "| figure | median (min, max) of the runs' ratios |\n|---|---|\n")
		for _, row := range []struct {
			name string
			f    func(ingestRun) float64
		}{
			{"JSON ingest", func(r ingestRun) float64 { return r.json }},
			{"NDJSON ingest", func(r ingestRun) float64 { return r.nd }},
			{"JSON ingest until the rollup holds every event", func(r ingestRun) float64 { return r.folded }},
			{"replay of duplicates", func(r ingestRun) float64 { return r.replay }},
			{"raw COPY", func(r ingestRun) float64 { return r.copy }},
			{"machine CPU per event (JSON ingest + fold)", func(r ingestRun) float64 { return float64(r.cpu.Machine) }},
		} {
			var ratios []float64
			for i := range a {
				ratios = append(ratios, row.f(b[i])/row.f(a[i]))
			}
			fmt.Fprintf(out, "| %s | %s |\n", row.name, bench.Summarize(ratios))
		}
		fmt.Fprintln(out)
	}
	return nil
}

func benchTokens(ctx context.Context, e *env, g *benchEngine, o benchOptions) error {
	out := e.stdout
	env := g.env
	var health, mint, verify, rMint, rVerify []float64
	var cpu [3][3][]float64 // per scenario: server, load generator, machine µs per request
	for r := 0; r < o.runs; r++ {
		h, err := env.Healthz(ctx, o.clients, o.duration)
		if err != nil {
			return fmt.Errorf("healthz: %w", err)
		}
		m, err := env.Mint(ctx, o.clients, o.duration)
		if err != nil {
			return fmt.Errorf("mint: %w", err)
		}
		v, err := env.Verify(ctx, o.clients, o.duration, verifyPool(o.duration))
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		fmt.Fprintf(e.stderr, "run %d: healthz %.0f/s, mint %.0f/s, verify %.0f/s; CPU µs per request (server/load generator/machine): %s, %s, %s\n",
			r+1, h.PerSecond, m.PerSecond, v.PerSecond, cpuCost(h), cpuCost(m), cpuCost(v))
		health, mint, verify = append(health, h.PerSecond), append(mint, m.PerSecond), append(verify, v.PerSecond)
		rMint, rVerify = append(rMint, m.PerSecond/h.PerSecond), append(rVerify, v.PerSecond/h.PerSecond)
		for i, t := range []bench.Throughput{h, m, v} {
			for j, d := range []time.Duration{t.Server, t.Client, t.Machine} {
				cpu[i][j] = append(cpu[i][j], micros(d))
			}
		}
	}
	fmt.Fprintf(out, "## Tokens over HTTP, %s: %d clients, %s per measurement\n\n", g.label, o.clients, o.duration)
	fmt.Fprintf(out, "| figure | median (min, max) |\n|---|---|\n")
	fmt.Fprintf(out, "| GET /healthz, requests/s | %s |\n", bench.Summarize(health))
	fmt.Fprintf(out, "| mint, tokens/s | %s |\n", bench.Summarize(mint))
	fmt.Fprintf(out, "| verify (distinct tokens, one event each), tokens/s | %s |\n", bench.Summarize(verify))
	fmt.Fprintf(out, "| mint / healthz | %s |\n", bench.Summarize(rMint))
	fmt.Fprintf(out, "| verify / healthz | %s |\n", bench.Summarize(rVerify))
	for i, name := range []string{"GET /healthz", "mint", "verify"} {
		for j, what := range []string{"server", "load generator", "machine (those two, the database, the kernel)"} {
			fmt.Fprintf(out, "| %s, CPU µs per request: %s | %s |\n", name, what, bench.Summarize(cpu[i][j]))
		}
	}
	fmt.Fprintln(out)
	return nil
}

func cpuCost(t bench.Throughput) string {
	return fmt.Sprintf("%.0f/%.0f/%.0f", micros(t.Server), micros(t.Client), micros(t.Machine))
}

// micros is d in microseconds, for the tables.
func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func benchReport(ctx context.Context, e *env, engines []*benchEngine, o benchOptions) error {
	out := e.stdout
	m := usage.Month{Year: 2026, Month: time.July}
	fmt.Fprintf(out, "## Monthly report: one account-month, %d users\n\n", o.reportUsers)
	fmt.Fprintf(out, "| engine | events | count(DISTINCT) scan, s | job (figures + roster checksum), s | scan / job | identity stats, s | storing version 1, s |\n|---|---|---|---|---|---|---|\n")
	// One account per engine: the second row adds as many events again for
	// the same users, so the job's time is shown against events at equal
	// users.
	accts := make([]string, len(engines))
	for i, g := range engines {
		acct, err := g.store.CreateAccount(ctx, "Report", false)
		if err != nil {
			return err
		}
		accts[i] = acct.SID
	}
	loaded := 0
	var jobMedians [2][]float64
	for _, events := range []int{o.reportEvents / 2, o.reportEvents} {
		for i, g := range engines {
			start := time.Now()
			if err := g.env.LoadMonth(ctx, accts[i], m, loaded, events, o.reportUsers); err != nil {
				return fmt.Errorf("%s: %w", g.label, err)
			}
			fmt.Fprintf(e.stderr, "%s: loaded %d events for %d users in %v\n", g.label, events, o.reportUsers, time.Since(start).Round(time.Second))
		}
		loaded = events
		scans, jobs, ratios, stats := make([][]float64, len(engines)), make([][]float64, len(engines)), make([][]float64, len(engines)), make([][]float64, len(engines))
		for r := 0; r < o.runs; r++ {
			for i, g := range engines {
				ds, n, err := g.env.CountDistinct(ctx, accts[i], m)
				if err != nil {
					return err
				}
				dj, active, err := bench.Job(ctx, g.store, accts[i], m)
				if err != nil {
					return err
				}
				if n != active {
					return fmt.Errorf("%s: the job counts %d users, the scan %d", g.label, active, n)
				}
				dst, err := bench.IdentityStats(ctx, g.store, accts[i], m)
				if err != nil {
					return err
				}
				scans[i], jobs[i], stats[i] = append(scans[i], ds.Seconds()), append(jobs[i], dj.Seconds()), append(stats[i], dst.Seconds())
				ratios[i] = append(ratios[i], ds.Seconds()/dj.Seconds())
			}
		}
		for i, g := range engines {
			// Versions are write-once: version 1 is stored from the full month.
			stored := "—"
			if events == o.reportEvents {
				df, err := bench.Finalize(ctx, g.store, accts[i], m)
				if err != nil {
					return err
				}
				stored = fmt.Sprintf("%.2f", df.Seconds())
			}
			fmt.Fprintf(out, "| %s | %d | %s | %s | %s | %s | %s |\n", g.label, events, bench.Summarize(scans[i]), bench.Summarize(jobs[i]),
				bench.Summarize(ratios[i]), bench.Summarize(stats[i]), stored)
			if i < 2 {
				jobMedians[i] = append(jobMedians[i], bench.Summarize(jobs[i]).Median)
			}
		}
	}
	fmt.Fprintln(out)
	if len(engines) == 2 {
		fmt.Fprintf(out, "Job time %s / %s: %.2f at %d events, %.2f at %d events.\n\n", engines[1].label, engines[0].label,
			jobMedians[1][0]/jobMedians[0][0], o.reportEvents/2, jobMedians[1][1]/jobMedians[0][1], o.reportEvents)
	}
	return nil
}

// readScenario is one way the read bench loads the server while it reads.
type readScenario struct{ name, ingests string }

var readScenarios = []readScenario{
	{"nothing else runs", ""},
	{"another account ingests at full speed", "other"},
	{"the same account ingests at full speed", "same"},
}

// readResult is what one engine measured in one scenario, run by run.
type readResult struct {
	reportP50, reportP99, statsP50, statsP99, ingest []float64
	report, stats                                    bench.Latencies // all runs pooled
	failed                                           int             // reads that failed or timed out
}

func benchReads(ctx context.Context, e *env, engines []*benchEngine, o benchOptions) error {
	out := e.stdout
	m := usage.Month{Year: 2026, Month: time.October}
	type parties struct{ reader, other bench.Account }
	ps := make([]parties, len(engines))
	for i, g := range engines {
		reader, err := newBenchAccount(ctx, g, "Reader")
		if err != nil {
			return err
		}
		other, err := newBenchAccount(ctx, g, "Other")
		if err != nil {
			return err
		}
		if g.env.Citus {
			// The other account on another worker where there is one: the
			// scale-out case, where the ingest of one does not land on the
			// shards of the other.
			rw, err := workerOf(ctx, g, reader.SID)
			if err != nil {
				return err
			}
			for tries := 0; tries < 20; tries++ {
				if ow, err := workerOf(ctx, g, other.SID); err != nil || ow != rw || len(g.env.Nodes) < 3 {
					break
				}
				if other, err = newBenchAccount(ctx, g, "Other"); err != nil {
					return err
				}
			}
		}
		ps[i] = parties{reader, other}
		start := time.Now()
		if err := g.env.LoadMonth(ctx, reader.SID, m, 0, o.readEvents, o.readUsers); err != nil {
			return fmt.Errorf("%s: %w", g.label, err)
		}
		fmt.Fprintf(e.stderr, "%s: loaded %d events for %d users in %v\n", g.label, o.readEvents, o.readUsers, time.Since(start).Round(time.Second))
	}
	results := make([][]readResult, len(engines))
	for i := range results {
		results[i] = make([]readResult, len(readScenarios))
	}
	reportPath := func(a bench.Account) string { return "/v1/accounts/" + a.SID + "/reports/" + m.String() }
	statsPath := func(a bench.Account) string {
		return "/v1/accounts/" + a.SID + "/identities/stats?month=" + m.String()
	}
	for r := 0; r < o.runs; r++ {
		for k := range engines {
			i := k
			if r%2 == 1 {
				i = len(engines) - 1 - k
			}
			g, p := engines[i], ps[i]
			for s, sc := range readScenarios {
				// Every scenario starts with nothing to fold.
				if _, err := g.env.Fold(ctx); err != nil {
					return fmt.Errorf("%s: fold: %w", g.label, err)
				}
				load := bench.LoadAvg()
				var in *bench.Ingester
				prefix := fmt.Sprintf("r%d-%s", r, sc.ingests)
				switch sc.ingests {
				case "other":
					in = g.env.Ingest(ctx, p.other, m, o.readUsers, o.clients, prefix)
				case "same":
					in = g.env.Ingest(ctx, p.reader, m, o.readUsers, o.clients, prefix)
				}
				if in != nil {
					time.Sleep(time.Second) // the ingest at full speed before the reads begin
				}
				var rep, st bench.Latencies
				var repFailed, stFailed int
				var repErr, stErr error
				var wg sync.WaitGroup
				wg.Go(func() { rep, repFailed, repErr = g.env.Read(ctx, p.reader, reportPath(p.reader), o.duration) })
				wg.Go(func() { st, stFailed, stErr = g.env.Read(ctx, p.reader, statsPath(p.reader), o.duration) })
				backlog := g.env.WatchPending(ctx, p.reader.SID)
				wg.Wait()
				maxPending := backlog()
				var rate float64
				if in != nil {
					var err error
					if rate, err = in.Stop(); err != nil {
						return fmt.Errorf("%s, %s: %w", g.label, sc.name, err)
					}
				}
				if err := errors.Join(repErr, stErr); err != nil {
					fmt.Fprintf(e.stderr, "run %d, %s, %s: %d report and %d stats reads failed: %v\n", r+1, g.label, sc.name, repFailed, stFailed, err)
				}
				res := &results[i][s]
				res.failed += repFailed + stFailed
				res.reportP50, res.reportP99 = append(res.reportP50, bench.Percentile(rep, 50)), append(res.reportP99, bench.Percentile(rep, 99))
				res.statsP50, res.statsP99 = append(res.statsP50, bench.Percentile(st, 50)), append(res.statsP99, bench.Percentile(st, 99))
				res.ingest = append(res.ingest, rate)
				res.report, res.stats = append(res.report, rep...), append(res.stats, st...)
				fmt.Fprintf(e.stderr, "run %d, %s, %s: report p50 %.3fs p99 %.3fs (%d), stats p50 %.3fs p99 %.3fs (%d), ingest %.0f/s, pending events of the account read at most %d; load %s → %s\n",
					r+1, g.label, sc.name, bench.Percentile(rep, 50), bench.Percentile(rep, 99), len(rep),
					bench.Percentile(st, 50), bench.Percentile(st, 99), len(st), rate, maxPending, load, bench.LoadAvg())
			}
		}
	}
	fmt.Fprintf(out, "## Reads under ingest: one account of %d events, %d users (month %s); %s per scenario, %d ingest clients\n\n",
		o.readEvents, o.readUsers, m, o.duration, o.clients)
	fmt.Fprintf(out, "A provisional report (GET …/reports/%s) and identity statistics (GET …/identities/stats?month=%s)\n", m, m)
	fmt.Fprintf(out, "read back to back, one client each, at once. Latencies in seconds: the median of the runs' p50 and\n")
	fmt.Fprintf(out, "p99 (min, max), and the p99 and max of every read of all runs pooled. A read is abandoned after %s\n", bench.ReadTimeout)
	fmt.Fprintf(out, "and counted at that latency; \"failed\" counts those and the answers other than 200.\n\n")
	fmt.Fprintf(out, "| engine | while | ingest, events/s | report p50 | report p99 | report p99 pooled (max) | stats p50 | stats p99 | stats p99 pooled (max) | reads (report + stats) | failed |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, g := range engines {
		for s, sc := range readScenarios {
			res := results[i][s]
			rate := "—"
			if sc.ingests != "" {
				rate = bench.Summarize(res.ingest).String()
			}
			fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %.3f (%.3f) | %s | %s | %.3f (%.3f) | %d + %d | %d |\n", g.label, sc.name, rate,
				bench.Summarize(res.reportP50), bench.Summarize(res.reportP99), bench.Percentile(res.report, 99), bench.Percentile(res.report, 100),
				bench.Summarize(res.statsP50), bench.Summarize(res.statsP99), bench.Percentile(res.stats, 99), bench.Percentile(res.stats, 100),
				len(res.report), len(res.stats), res.failed)
		}
	}
	fmt.Fprintln(out)
	return nil
}

// verifyPool is how many distinct tokens the verify measurement mints
// first: more than it can verify in d, so that each verification records a
// new event.
func verifyPool(d time.Duration) int {
	return max(20000, int(d.Seconds()*15000))
}
