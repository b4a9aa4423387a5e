package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

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
}

func (e *env) benchCommand() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench ingest|tokens|report|all",
		Short: "Measure ingest, tokens and reports on this machine, each beside its yardstick in the same run",
		Long: `bench starts a private PostgreSQL (or uses DATABASE_URL), runs tally serve as a
separate process on loopback and drives it from this process. Each figure is
the median of --runs runs with the min and max; every comparison is a ratio
taken in the same run: ingest beside a raw COPY of the same rows into a table
with the same idempotency index, tokens beside GET /healthz, the monthly job
beside a count(DISTINCT) scan of the month's events.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"ingest", "tokens", "report", "all"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.bench(cmd.Context(), args[0], o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.events, "events", 2_000_000, "events per ingest run")
	f.IntVar(&o.runs, "runs", 3, "runs per figure")
	f.IntVar(&o.clients, "clients", 4, "concurrent clients")
	f.DurationVar(&o.duration, "duration", 5*time.Second, "length of each token measurement")
	f.IntVar(&o.reportEvents, "report-events", 10_000_000, "events in the report month")
	f.IntVar(&o.reportUsers, "report-users", 1_000_000, "distinct users in the report month")
	f.StringVar(&o.dataDir, "data-dir", "", "where to put the private cluster (default: a temporary dir)")
	return cmd
}

func (e *env) bench(ctx context.Context, what string, o benchOptions) error {
	out := e.stdout
	dbURL := e.getenv("DATABASE_URL")
	if dbURL == "" {
		dir := o.dataDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "tally-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		}
		// Durable, as in production (fsync and synchronous_commit stay on),
		// with memory and WAL room for tens of millions of rows.
		url, stop, err := privateDatabase(ctx, filepath.Join(dir, "postgres"), "tally_bench", pgcluster.Options{Settings: map[string]string{
			"shared_buffers": "2GB", "max_wal_size": "8GB", "checkpoint_timeout": "30min", "work_mem": "64MB"}})
		if err != nil {
			return err
		}
		defer stop()
		dbURL = url
	}
	pool, err := openPool(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool); err != nil {
		return err
	}
	store := postgres.New(pool, time.Now)
	master := secrets.NewMasterKey()
	key, _ := secrets.ParseMasterKey(master)
	box, _ := secrets.NewBox(key)
	acct, err := store.CreateAccount(ctx, "Bench", false)
	if err != nil {
		return err
	}
	k, secret, err := keys.Create(ctx, store, box, acct.SID, usage.RoleAdmin, "bench")
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	server, base, err := bench.StartServer(ctx, self, cleanBenchEnv(dbURL, master))
	if err != nil {
		return err
	}
	defer func() { server.Process.Signal(os.Interrupt); server.Wait() }()
	env := &bench.Env{BaseURL: base, Pool: pool, AccountSID: acct.SID, KeySID: k.SID, Secret: secret, Server: server}

	var pgVersion string
	pool.QueryRow(ctx, `SHOW server_version`).Scan(&pgVersion)
	fmt.Fprintf(out, "# tally bench %s — %s, %d CPUs, PostgreSQL %s, %d runs, %d clients\n\n",
		what, runtime.Version(), runtime.NumCPU(), pgVersion, o.runs, o.clients)

	if what == "ingest" || what == "all" {
		if err := benchIngest(ctx, e, env, o); err != nil {
			return err
		}
	}
	if what == "tokens" || what == "all" {
		if err := benchTokens(ctx, e, env, o); err != nil {
			return err
		}
	}
	if what == "report" || what == "all" {
		if err := benchReport(ctx, e, env, store, o); err != nil {
			return err
		}
	}
	return nil
}

// cleanBenchEnv is the server's environment: limits lifted (the bench
// measures throughput, not the limiter) and no scheduler runs.
func cleanBenchEnv(dbURL, master string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TALLY_PPROF_ADDR=") || strings.HasPrefix(kv, "TALLY_FOLD_INTERVAL=") {
			env = append(env, kv) // profile the server, or try another fold interval, on request
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

func benchIngest(ctx context.Context, e *env, env *bench.Env, o benchOptions) error {
	out := e.stdout
	w := bench.NewWorkload(o.events, "bench", 1)
	jsonBodies := w.Bodies(1000, false)
	ndBodies := w.Bodies(10000, true)
	var jsonRate, ndRate, replayRate, copyRate, ratioJSON, ratioND, ratioReplay, foldSecs, foldedRate []float64
	var sizePerMillion float64
	for r := 0; r < o.runs; r++ {
		if err := env.Reset(ctx); err != nil {
			return err
		}
		d, totals, err := env.Post(ctx, jsonBodies, false, o.clients)
		if err != nil {
			return fmt.Errorf("json ingest: %w", err)
		}
		if totals[0] != int64(o.events) {
			return fmt.Errorf("json ingest accepted %d of %d", totals[0], o.events)
		}
		j := float64(o.events) / d.Seconds()
		f, err := env.Fold(ctx)
		if err != nil {
			return fmt.Errorf("fold: %w", err)
		}
		folded := float64(o.events) / (d + f).Seconds()
		users, sum, err := env.Counts(ctx)
		if err != nil {
			return err
		}
		// The fold leaves rollup_pending empty: it truncates one slot and
		// deletes what the other holds. VACUUM gives those pages back, as
		// the next switch of slots does in service, so the size is the
		// data, not the backlog just folded.
		if _, err := env.Pool.Exec(ctx, `VACUUM rollup_pending`); err != nil {
			return fmt.Errorf("vacuum rollup_pending: %w", err)
		}
		if size, err := env.DatabaseSize(ctx); err == nil {
			sizePerMillion = float64(size) / (1 << 20) / (float64(o.events) / 1e6)
		}
		d, totals, err = env.Post(ctx, jsonBodies, false, o.clients)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		users2, sum2, _ := env.Counts(ctx)
		if totals[1] != int64(o.events) || users2 != users || sum2 != sum {
			return fmt.Errorf("replay changed counts: duplicates %d, users %d→%d, events %d→%d", totals[1], users, users2, sum, sum2)
		}
		rep := float64(o.events) / d.Seconds()
		if err := env.Reset(ctx); err != nil {
			return err
		}
		d, totals, err = env.Post(ctx, ndBodies, true, o.clients)
		if err != nil || totals[0] != int64(o.events) {
			return fmt.Errorf("ndjson ingest: accepted %d: %v", totals[0], err)
		}
		nd := float64(o.events) / d.Seconds()
		// The raw COPY runs alone: nothing left for the server to fold.
		if _, err := env.Fold(ctx); err != nil {
			return fmt.Errorf("fold: %w", err)
		}
		d, err = env.RawCopy(ctx, w, 1000, o.clients)
		if err != nil {
			return fmt.Errorf("raw copy: %w", err)
		}
		cp := float64(o.events) / d.Seconds()
		fmt.Fprintf(e.stderr, "run %d: json %.0f/s, replay %.0f/s, ndjson %.0f/s, raw copy %.0f/s, fold after json %.2fs (json through fold %.0f/s)\n",
			r+1, j, rep, nd, cp, f.Seconds(), folded)
		foldSecs, foldedRate = append(foldSecs, f.Seconds()), append(foldedRate, folded)
		jsonRate, replayRate, ndRate, copyRate = append(jsonRate, j), append(replayRate, rep), append(ndRate, nd), append(copyRate, cp)
		ratioJSON, ratioND, ratioReplay = append(ratioJSON, j/cp), append(ratioND, nd/cp), append(ratioReplay, rep/j)
	}
	fmt.Fprintf(out, "## Ingest over HTTP: %d events, JSON batches of 1000 / NDJSON bodies of 10 000, %d clients\n\n", o.events, o.clients)
	fmt.Fprintf(out, "| figure | median (min, max) |\n|---|---|\n")
	fmt.Fprintf(out, "| JSON ingest, events/s | %s |\n", bench.Summarize(jsonRate))
	fmt.Fprintf(out, "| NDJSON ingest, events/s | %s |\n", bench.Summarize(ndRate))
	fmt.Fprintf(out, "| rollup fold left after the last JSON body, s | %s |\n", bench.Summarize(foldSecs))
	fmt.Fprintf(out, "| JSON ingest until the rollup holds every event, events/s | %s |\n", bench.Summarize(foldedRate))
	fmt.Fprintf(out, "| replay of duplicates, events/s | %s |\n", bench.Summarize(replayRate))
	fmt.Fprintf(out, "| raw COPY, same rows and idempotency index, rows/s | %s |\n", bench.Summarize(copyRate))
	fmt.Fprintf(out, "| JSON ingest / raw COPY | %s |\n", bench.Summarize(ratioJSON))
	fmt.Fprintf(out, "| NDJSON ingest / raw COPY | %s |\n", bench.Summarize(ratioND))
	fmt.Fprintf(out, "| replay / first ingest | %s |\n", bench.Summarize(ratioReplay))
	fmt.Fprintf(out, "| server peak RSS, MiB | %.0f |\n", bench.PeakRSS(env.Server.Process.Pid))
	fmt.Fprintf(out, "| database size per million events, MiB | %.0f |\n\n", sizePerMillion)
	return nil
}

func benchTokens(ctx context.Context, e *env, env *bench.Env, o benchOptions) error {
	out := e.stdout
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
	fmt.Fprintf(out, "## Tokens over HTTP: %d clients, %s per measurement\n\n", o.clients, o.duration)
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

func benchReport(ctx context.Context, e *env, env *bench.Env, store *postgres.Store, o benchOptions) error {
	out := e.stdout
	m := usage.Month{Year: 2026, Month: time.July}
	fmt.Fprintf(out, "## Monthly report: one account-month, %d users\n\n", o.reportUsers)
	fmt.Fprintf(out, "| events | count(DISTINCT) scan, s | job (figures + roster checksum), s | scan / job | identity stats, s | storing version 1, s |\n|---|---|---|---|---|---|\n")
	// One account: the second row adds as many events again for the same
	// users, so the job's time is shown against events at equal users.
	acct, err := store.CreateAccount(ctx, "Report", false)
	if err != nil {
		return err
	}
	loaded := 0
	for _, events := range []int{o.reportEvents / 2, o.reportEvents} {
		start := time.Now()
		if err := env.LoadMonth(ctx, acct.SID, m, loaded, events, o.reportUsers); err != nil {
			return err
		}
		loaded = events
		fmt.Fprintf(e.stderr, "loaded %d events for %d users in %v\n", events, o.reportUsers, time.Since(start).Round(time.Second))
		var scans, jobs, ratios, stats []float64
		for r := 0; r < o.runs; r++ {
			ds, n, err := env.CountDistinct(ctx, acct.SID, m)
			if err != nil {
				return err
			}
			dj, active, err := bench.Job(ctx, store, acct.SID, m)
			if err != nil {
				return err
			}
			if n != active {
				return fmt.Errorf("the job counts %d users, the scan %d", active, n)
			}
			dst, err := bench.IdentityStats(ctx, store, acct.SID, m)
			if err != nil {
				return err
			}
			scans, jobs, stats = append(scans, ds.Seconds()), append(jobs, dj.Seconds()), append(stats, dst.Seconds())
			ratios = append(ratios, ds.Seconds()/dj.Seconds())
		}
		// Versions are write-once: version 1 is stored from the full month.
		stored := "—"
		if events == o.reportEvents {
			df, err := bench.Finalize(ctx, store, acct.SID, m)
			if err != nil {
				return err
			}
			stored = fmt.Sprintf("%.2f", df.Seconds())
		}
		fmt.Fprintf(out, "| %d | %s | %s | %s | %s | %s |\n", events, bench.Summarize(scans), bench.Summarize(jobs),
			bench.Summarize(ratios), bench.Summarize(stats), stored)
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
