package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tallyhq/tally/internal/keys"
	"github.com/tallyhq/tally/internal/pgcluster"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// demoRateCard prices the demo account like the contract's example.
const demoRateCard = `{"currency":"USD","free_users":200,"tiers":[{"up_to":1000,"unit_price":"0.05"},{"up_to":null,"unit_price":"0.03"}]}`

// credentials is credentials.json (CONTRACT §10).
type credentials struct {
	BaseURL     string        `json:"base_url"`
	DatabaseURL string        `json:"database_url"`
	Platform    credentialKey `json:"platform"`
	Account     credentialKey `json:"account"`
}

type credentialKey struct {
	AccountSID   string `json:"account_sid"`
	APIKeySID    string `json:"api_key_sid"`
	APIKeySecret string `json:"api_key_secret"`
}

func (e *env) devCommand() *cobra.Command {
	var addr, dataDir string
	var workers int
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run tally with its own private PostgreSQL, a demo account and its credentials",
		Long: `dev starts (and the first time creates) a private PostgreSQL cluster under the
data dir from the server binaries installed on this machine, migrates it,
creates a platform account and a demo account, writes credentials.json into
the data dir and serves the API. Ctrl-C stops the server and the cluster.
With DATABASE_URL set, that database is used instead of a private cluster.

With --workers N (N >= 1) the private cluster is Citus, the distributed
PostgreSQL: a coordinator and N workers, each its own server under the
data dir, the tables distributed by account. It needs the Citus extension
installed for the machine's PostgreSQL.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if workers < 0 {
				return fmt.Errorf("--workers %d: want 0 (plain PostgreSQL) or more", workers)
			}
			return e.dev(cmd.Context(), addr, dataDir, workers)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "address to serve the API on")
	cmd.Flags().StringVar(&dataDir, "data-dir", ".tally", "where the cluster, master key and credentials live")
	cmd.Flags().IntVar(&workers, "workers", 0, "run a private Citus cluster of a coordinator and this many workers (0: plain PostgreSQL)")
	return cmd
}

func (e *env) dev(ctx context.Context, addr, dataDir string, workers int) error {
	log := e.logger()
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}

	dbURL := e.cfg.databaseURL
	switch {
	case dbURL != "" && workers > 0:
		return errors.New("--workers starts a private Citus cluster: unset DATABASE_URL, or leave out --workers to use that database")
	case dbURL == "" && workers > 0:
		// Three or more servers on one machine: a smaller share of memory
		// each than the single dev server gets.
		url, stop, err := privateCitusDatabase(ctx, filepath.Join(dataDir, "citus"), "tally", workers, pgcluster.Options{Logger: log,
			Settings: map[string]string{"shared_buffers": "256MB", "max_wal_size": "4GB"}})
		if err != nil {
			return err
		}
		defer stop()
		dbURL = url
	case dbURL == "":
		url, stop, err := privateDatabase(ctx, filepath.Join(dataDir, "postgres"), "tally", pgcluster.Options{Logger: log,
			Settings: map[string]string{"shared_buffers": "512MB", "max_wal_size": "4GB"}})
		if err != nil {
			return err
		}
		defer stop()
		dbURL = url
	}

	box, err := devMasterKey(filepath.Join(dataDir, "master.key"))
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool); err != nil {
		return err
	}
	store := postgres.New(pool, nil)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	credsPath := filepath.Join(dataDir, "credentials.json")
	creds, err := devCredentials(ctx, store, box, credsPath)
	if err != nil {
		ln.Close()
		return err
	}
	creds.BaseURL = "http://" + ln.Addr().String()
	creds.DatabaseURL = dbURL
	if err := writeJSONFile(credsPath, creds); err != nil {
		ln.Close()
		return err
	}
	e.banner(creds, credsPath)
	// Webhooks may go to the developer's own machine: dev's default of
	// TALLY_WEBHOOK_ALLOW_PRIVATE is 1 (settings).
	return e.serveAPI(ctx, ln, pool, box, log)
}

// privateDatabase starts (or creates) the private cluster in dir and makes
// database db in it. stop shuts the cluster down, even after Ctrl-C has
// cancelled ctx.
func privateDatabase(ctx context.Context, dir, db string, opts pgcluster.Options) (url string, stop func(), err error) {
	cluster, err := pgcluster.Start(ctx, dir, opts)
	if err != nil {
		return "", nil, err
	}
	stop = func() { cluster.Stop(context.WithoutCancel(ctx)) }
	if err := createDatabase(ctx, cluster.ConnString("postgres"), db); err != nil {
		stop()
		return "", nil, err
	}
	return cluster.ConnString(db), stop, nil
}

// privateCitusDatabase starts (or creates) a private Citus cluster of a
// coordinator and workers workers in dir, and makes db a Citus database on
// it with the workers registered, so that migrating it distributes the
// tables. url is the coordinator's. stop shuts every node down, even after
// Ctrl-C has cancelled ctx.
func privateCitusDatabase(ctx context.Context, dir, db string, workers int, opts pgcluster.Options) (url string, stop func(), err error) {
	cluster, err := pgcluster.StartCitus(ctx, dir, workers, opts)
	if err != nil {
		return "", nil, err
	}
	stop = func() { cluster.Stop(context.WithoutCancel(ctx)) }
	if err := cluster.CreateDatabase(ctx, db); err != nil {
		stop()
		return "", nil, err
	}
	return cluster.ConnString(db), stop, nil
}

// createDatabase creates db on the server behind maintenanceURL unless it
// exists.
func createDatabase(ctx context.Context, maintenanceURL, db string) error {
	conn, err := pgx.Connect(ctx, maintenanceURL)
	if err != nil {
		return fmt.Errorf("connect to the private cluster: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, db).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", db, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	return nil
}

// devMasterKey reads the dev master key, making one the first time. It is
// kept beside the cluster because the sealed secrets are useless without it.
func devMasterKey(path string) (*secrets.Box, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b = []byte(secrets.NewMasterKey() + "\n")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("write master key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read master key: %w", err)
	}
	k, err := secrets.ParseMasterKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("master key %s: %w", path, err)
	}
	return secrets.NewBox(k)
}

// devCredentials reuses credentials.json when its keys still work, and
// otherwise creates the platform and demo accounts and their admin keys.
func devCredentials(ctx context.Context, store *postgres.Store, box *secrets.Box, path string) (credentials, error) {
	var c credentials
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &c) == nil {
		if keyWorks(ctx, store, box, c.Platform) && keyWorks(ctx, store, box, c.Account) {
			return c, nil
		}
	}
	platform, err := store.CreateAccount(ctx, "Platform", true)
	if err != nil {
		return c, err
	}
	pk, psecret, err := keys.Create(ctx, store, box, platform.SID, usage.RoleAdmin, "tally dev platform admin")
	if err != nil {
		return c, err
	}
	demo, err := store.CreateAccount(ctx, "Demo", false)
	if err != nil {
		return c, err
	}
	dk, dsecret, err := keys.Create(ctx, store, box, demo.SID, usage.RoleAdmin, "tally dev demo admin")
	if err != nil {
		return c, err
	}
	if err := store.SetRateCard(ctx, demo.SID, json.RawMessage(demoRateCard)); err != nil {
		return c, err
	}
	c.Platform = credentialKey{AccountSID: platform.SID, APIKeySID: pk.SID, APIKeySecret: psecret}
	c.Account = credentialKey{AccountSID: demo.SID, APIKeySID: dk.SID, APIKeySecret: dsecret}
	return c, nil
}

func keyWorks(ctx context.Context, store *postgres.Store, box *secrets.Box, k credentialKey) bool {
	rec, err := store.KeyForAuth(ctx, k.APIKeySID)
	if err != nil || rec.Revoked || rec.Principal.AccountSID != k.AccountSID {
		return false
	}
	secret, err := box.Open(rec.Sealed, k.APIKeySID)
	return err == nil && secret == k.APIKeySecret
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// banner is the one place where a secret is printed: the developer needs
// the demo key to try the API.
func (e *env) banner(c credentials, credsPath string) {
	// The shell splices the current time into the single-quoted body.
	body := `'{"events":[{"id":"evt-1","activity":"send","source":"sdk",` +
		`"service_sid":"IS00000000000000000000000000000001","identity":"alice@example.com",` +
		`"occurred_at":"'"$(date -u +%Y-%m-%dT%H:%M:%SZ)"'"}]}'`
	var b strings.Builder
	fmt.Fprintf(&b, "\ntally dev is serving at %s\n\n", c.BaseURL)
	fmt.Fprintf(&b, "  demo account  %s\n  demo key      %s\n  demo secret   %s\n", c.Account.AccountSID, c.Account.APIKeySID, c.Account.APIKeySecret)
	fmt.Fprintf(&b, "  credentials   %s (the platform key too)\n  database      %s\n\n", credsPath, c.DatabaseURL)
	fmt.Fprintf(&b, "Post an event:\n\n  curl -u %s:%s \\\n    -H 'Content-Type: application/json' \\\n    -d %s \\\n    %s/v1/accounts/%s/events\n\n",
		c.Account.APIKeySID, c.Account.APIKeySecret, body, c.BaseURL, c.Account.AccountSID)
	b.WriteString("Ctrl-C stops the server and the cluster.\n")
	fmt.Fprint(e.stdout, b.String())
}
