package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/tallyhq/tally/internal/keys"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// env is what every command reads from its surroundings. cfg is read once,
// when a command starts, before it runs (newRootCommand).
type env struct {
	cfg    config
	stdout io.Writer
	stderr io.Writer
}

func newRootCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	e := &env{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "tally",
		Short:         "Active-user usage accounting for chat platforms",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Every command reads its settings here, once: a bad value stops it
	// before it starts anything. --help runs no hook, so it works whatever
	// the environment holds.
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := loadConfig(getenv, commandName(cmd))
		e.cfg = cfg
		return err
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(e.devCommand(), e.serveCommand(), e.migrateCommand(), e.accountsCommand(), e.keysCommand(), e.healthcheckCommand(), e.reportCommand(), e.benchCommand(), e.importCommand())
	addEnvHelp(root)
	return root
}

// commandName is cmd's path below the root: "serve", "keys revoke".
func commandName(cmd *cobra.Command) string {
	path := cmd.CommandPath()
	if cmd.HasParent() {
		path = strings.TrimPrefix(path, cmd.Root().Name()+" ")
	}
	return path
}

func (e *env) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// openPool connects to url with bounded waits, so a request never hangs on an
// unreachable database for longer than the connect timeout.
func openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > connectTimeout {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return pool, nil
}

func (e *env) migrateCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "migrate up|down|status", Short: "Apply, roll back or list the embedded migrations",
		Args: cobra.ExactArgs(1), ValidArgs: []string{"up", "down", "status"}}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		pool, err := openPool(cmd.Context(), e.cfg.databaseURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		m, err := postgres.NewMigrator(pool)
		if err != nil {
			return err
		}
		defer m.Close()
		switch args[0] {
		case "up":
			return m.Up(cmd.Context())
		case "down":
			return m.Down(cmd.Context())
		case "status":
			st, err := m.Status(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tSTATE\tFILE")
			for _, s := range st {
				fmt.Fprintf(w, "%d\t%s\t%s\n", s.Source.Version, s.State, s.Source.Path)
			}
			return w.Flush()
		}
		return fmt.Errorf("unknown migrate action %q: want up, down or status", args[0])
	}
	return cmd
}

// adminDeps opens what the account and key commands need.
func (e *env) adminDeps(ctx context.Context) (*postgres.Store, *secrets.Box, func(), error) {
	pool, err := openPool(ctx, e.cfg.databaseURL)
	if err != nil {
		return nil, nil, nil, err
	}
	return postgres.New(pool, nil), e.cfg.box, pool.Close, nil
}

func (e *env) accountsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "accounts", Short: "Manage accounts"}
	var name string
	var platform bool
	create := &cobra.Command{Use: "create", Short: "Create an account and its first admin key", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, box, closeDB, err := e.adminDeps(cmd.Context())
			if err != nil {
				return err
			}
			defer closeDB()
			a, err := store.CreateAccount(cmd.Context(), name, platform)
			if err != nil {
				return err
			}
			k, secret, err := keys.Create(cmd.Context(), store, box, a.SID, usage.RoleAdmin, "created by tally accounts create")
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "account_sid     %s\napi_key_sid     %s\napi_key_secret  %s\n", a.SID, k.SID, secret)
			return nil
		}}
	create.Flags().StringVar(&name, "name", "", "the account's name (required)")
	create.Flags().BoolVar(&platform, "platform", false, "make it a platform account, whose keys act on every account")
	_ = create.MarkFlagRequired("name")
	cmd.AddCommand(create)
	return cmd
}

func (e *env) keysCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage API keys"}
	var account, role, friendly string
	create := &cobra.Command{Use: "create", Short: "Create an API key; its secret is shown once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !usage.IsAccountSID(account) {
				return fmt.Errorf("--account %q is not an account SID (AC followed by 32 hex digits)", account)
			}
			if !usage.Role(role).Valid() {
				return fmt.Errorf("--role %q: want admin, ingest or finance", role)
			}
			store, box, closeDB, err := e.adminDeps(cmd.Context())
			if err != nil {
				return err
			}
			defer closeDB()
			if _, err := store.Account(cmd.Context(), account); err != nil {
				return fmt.Errorf("account %s: %w", account, err)
			}
			k, secret, err := keys.Create(cmd.Context(), store, box, account, usage.Role(role), friendly)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "api_key_sid     %s\napi_key_secret  %s\nrole            %s\n", k.SID, secret, k.Role)
			return nil
		}}
	create.Flags().StringVar(&account, "account", "", "the account SID (required)")
	create.Flags().StringVar(&role, "role", "", "admin, ingest or finance (required)")
	create.Flags().StringVar(&friendly, "friendly-name", "", "a name to tell the key apart")
	_ = create.MarkFlagRequired("account")
	_ = create.MarkFlagRequired("role")

	revoke := &cobra.Command{Use: "revoke SK…", Short: "Revoke an API key (effective within 5 seconds everywhere)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sid := args[0]
			if !usage.IsKeySID(sid) {
				return fmt.Errorf("%q is not an API key SID (SK followed by 32 hex digits)", sid)
			}
			pool, err := openPool(cmd.Context(), e.cfg.databaseURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			store := postgres.New(pool, nil)
			rec, err := store.KeyForAuth(cmd.Context(), sid)
			if err != nil {
				return fmt.Errorf("key %s: %w", sid, err)
			}
			if err := store.RevokeKey(cmd.Context(), rec.Principal.AccountSID, sid); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "revoked %s\n", sid)
			return nil
		}}
	rewrap := &cobra.Command{Use: "rewrap", Short: "Re-seal every stored key secret under TALLY_MASTER_KEY (old keys in TALLY_MASTER_KEY_PREVIOUS)", Args: cobra.NoArgs,
		Long: `Rotating the master key without downtime:
  1. run every replica with TALLY_MASTER_KEY=<new> and TALLY_MASTER_KEY_PREVIOUS=<old>;
  2. tally keys rewrap (same environment): all secrets are re-sealed under the new key, in one transaction;
  3. drop TALLY_MASTER_KEY_PREVIOUS.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, box, closeDB, err := e.adminDeps(cmd.Context())
			if err != nil {
				return err
			}
			defer closeDB()
			n, err := store.RewrapSecrets(cmd.Context(), func(sid string, sealed []byte) ([]byte, error) {
				return box.Rewrap(sealed, sid)
			})
			if err != nil {
				return err
			}
			// Alerts' signing secrets are sealed under the same master key.
			a, err := store.RewrapAlertSecrets(cmd.Context(), func(sid string, sealed []byte) ([]byte, error) {
				return box.Rewrap(sealed, sid)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "rewrapped %d key secrets and %d alert signing secrets\n", n, a)
			return nil
		}}
	cmd.AddCommand(create, revoke, rewrap)
	return cmd
}

// healthcheckCommand lets a container without a shell or curl probe the
// server (docker-compose's health check).
func (e *env) healthcheckCommand() *cobra.Command {
	var url string
	cmd := &cobra.Command{Use: "healthcheck", Short: "Exit 0 when the server answers 200 at --url", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("healthcheck: %s answered %s", url, resp.Status)
			}
			return nil
		}}
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:8080/readyz", "the URL to probe")
	return cmd
}
