package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/tallyhq/tally/internal/alerts"
	"github.com/tallyhq/tally/internal/billing"
	"github.com/tallyhq/tally/internal/console"
	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
)

const (
	connectTimeout = 5 * time.Second
	// shutdownGrace is how long requests in flight may run after SIGTERM.
	shutdownGrace = 30 * time.Second
)

func (e *env) serveCommand() *cobra.Command {
	var migrate bool
	cmd := &cobra.Command{Use: "serve", Short: "Serve the API (production): needs DATABASE_URL and TALLY_MASTER_KEY", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr := e.cfg.addr
			ctx := cmd.Context()
			log := e.logger()
			pool, err := openPool(ctx, e.cfg.databaseURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			if migrate {
				if err := postgres.Migrate(ctx, pool); err != nil {
					return err
				}
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			log.Info("serving", "addr", ln.Addr().String())
			return e.serveAPI(ctx, ln, pool, e.cfg.box, log)
		}}
	cmd.Flags().BoolVar(&migrate, "migrate", false, "apply pending migrations before serving")
	return cmd
}

// serveAPI serves the API on ln until ctx ends, then stops accepting and
// lets requests in flight finish for up to shutdownGrace.
func (e *env) serveAPI(ctx context.Context, ln net.Listener, pool *pgxpool.Pool, box *secrets.Box, log *slog.Logger) error {
	cfg := e.cfg
	alertsCfg, runAlerts, folded := e.alerts(pool, box, log)
	store := postgres.New(pool, time.Now)
	store.SetMaxPending(cfg.maxPending)
	job := &billing.Job{Store: store, Now: time.Now, FinalizeAfter: cfg.finalizeAfter, Log: log}
	var migrated atomic.Bool
	handler := httpapi.New(httpapi.Config{
		Store: store, Box: box, Logger: log, Now: time.Now, Job: job,
		IngestLimit: cfg.ingestLimit, TokenLimit: cfg.tokenLimit, Alerts: alertsCfg,
		Ready: func(r *http.Request) error {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := store.Ping(ctx); err != nil {
				return errors.New("database unreachable")
			}
			if migrated.Load() {
				return nil
			}
			m, err := postgres.NewMigrator(pool)
			if err != nil {
				return err
			}
			defer m.Close()
			pending, err := m.Pending(ctx)
			if err != nil {
				return errors.New("cannot read the migration state")
			}
			if pending {
				return errors.New("database has pending migrations: run `tally migrate up`")
			}
			migrated.Store(true)
			return nil
		},
	})
	console.Register(handler, console.Config{Store: store, Box: box, Logger: log, Now: time.Now})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		// An NDJSON backfill of 64 MiB needs time to arrive and commit.
		ReadTimeout:  5 * time.Minute,
		WriteTimeout: 6 * time.Minute,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// The scheduler shares the handler's job, so its runs show in /metrics.
	jobCtx, stopJob := context.WithCancel(ctx)
	jobDone := make(chan struct{})
	go func() { job.Schedule(jobCtx, cfg.reportInterval); close(jobDone) }()
	defer func() { stopJob(); <-jobDone }()
	// Bodies append to rollup_pending; folding it in the background keeps
	// what a read merges in small. Four folds at once: every part of one
	// busy account (postgres.FoldParts), or parts of several. Each account
	// a fold changed is handed to the alerts' evaluator, which compares its
	// alerts soon after rather than at its next pass over every alert.
	foldDone := make(chan struct{})
	go func() {
		store.FoldInBackground(jobCtx, cfg.foldInterval, postgres.FoldParts, folded, log)
		close(foldDone)
	}()
	defer func() { stopJob(); <-foldDone }()
	// Usage alerts: evaluation and the webhook outbox's delivery (§14).
	alertsDone := make(chan struct{})
	go func() { runAlerts(jobCtx); close(alertsDone) }()
	defer func() { stopJob(); <-alertsDone }()

	if addr := cfg.pprofAddr; addr != "" {
		// Profiles on a separate, operator-only listener (keep it on loopback).
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/heap", pprof.Index)
		go func() {
			if err := http.ListenAndServe(addr, mux); err != nil {
				log.Warn("pprof listener", "err", err)
			}
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", shutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// alerts builds usage alerts from the settings TALLY_WEBHOOK_ALLOW_PRIVATE
// and TALLY_ALERT_INTERVAL. run evaluates and delivers until its context
// ends; folded is the background fold's onFolded, which marks an account
// for evaluation without waiting.
func (e *env) alerts(pool *pgxpool.Pool, box *secrets.Box, log *slog.Logger) (cfg httpapi.AlertsConfig, run func(context.Context), folded func(accountSID string)) {
	allow, every := e.cfg.webhookAllowPrivate, e.cfg.alertInterval
	store := postgres.New(pool, time.Now)
	metrics := alerts.NewMetrics(store)
	if allow {
		log.Warn("TALLY_WEBHOOK_ALLOW_PRIVATE=1: webhooks may go to http and to private addresses")
	}
	eval := &alerts.Evaluator{Store: store, Metrics: metrics, Log: log}
	worker := &alerts.Worker{Store: store, Box: box, Metrics: metrics, Log: log, AllowPrivate: allow}
	run = func(ctx context.Context) {
		done := make(chan struct{})
		go func() { eval.Run(ctx, every); close(done) }()
		worker.Run(ctx, alerts.DefaultPoll)
		<-done
	}
	return httpapi.AlertsConfig{AllowPrivate: allow, Metrics: metrics}, run, eval.Changed
}
