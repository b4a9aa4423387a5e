package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// config is everything tally reads from its environment. A command reads it
// once, before it starts anything (loadConfig), so a bad value stops it
// with a message naming the variable instead of failing halfway through a
// start. The variables themselves are the table settings below.
type config struct {
	databaseURL string
	// box seals and opens secrets under TALLY_MASTER_KEY, and opens what
	// the keys of TALLY_MASTER_KEY_PREVIOUS sealed; nil when not read.
	box                                                        *secrets.Box
	masterKey                                                  []byte
	previousKeys                                               [][]byte
	addr                                                       string
	finalizeAfter, reportInterval, foldInterval, alertInterval time.Duration
	ingestLimit, tokenLimit                                    httpapi.Limit
	maxPending                                                 int64
	webhookAllowPrivate                                        bool
	pprofAddr                                                  string
	// The target of tally import, all three or none.
	baseURL, keySID string
	keySecret       string
}

// String shows c with its secrets hidden, so that a config printed by
// mistake (%v, %+v, %s) leaks no password or key.
func (c config) String() string {
	type shown config // without methods: no recursion
	s := shown(c)
	for _, f := range []*string{&s.databaseURL, &s.keySecret} {
		if *f != "" {
			*f = "[hidden]"
		}
	}
	return fmt.Sprintf("%+v", s)
}

// GoString is String, for %#v.
func (c config) GoString() string { return c.String() }

// setting is one environment variable: which commands read it, its
// default, what it means and how its value is checked. The README's
// configuration table and every command's --help are made from the table
// settings, so the documentation cannot drift from what the code reads.
type setting struct {
	name string
	// cmds are the commands that read it: "keys" is every keys command,
	// "keys create" only that one.
	cmds []string
	// required are the commands (of cmds) that refuse to start without it;
	// unsetHint says how to set it.
	required  []string
	unsetHint string
	// def is the default, a value parsed like any other, so the documented
	// default is the one in force; cmdDef overrides it for some commands.
	def    string
	cmdDef map[string]string
	// none is what happens without it where it has no default.
	none string
	// secret values are never printed, not even in an error.
	secret bool
	doc    string
	// parse checks v (never empty) and stores it in c. Its error is a
	// predicate that follows the variable (and its value, unless secret):
	// `TALLY_FOLD_INTERVAL: "abc" ` + `is not a duration such as 1s`.
	parse func(c *config, v string) error
}

// settings is every variable tally reads, in the order the docs list them
// and errors are reported.
var settings = []setting{
	{
		name:      "DATABASE_URL",
		cmds:      []string{"serve", "migrate", "accounts", "keys", "report", "dev", "bench"},
		required:  []string{"serve", "migrate", "accounts", "keys", "report"},
		unsetHint: "point it at the PostgreSQL database, e.g. postgres://tally@db:5432/tally",
		none:      "a private cluster of their own",
		secret:    true,
		doc: "a PostgreSQL URL or DSN; on Citus, the coordinator. Pool settings go in it " +
			"(`pool_max_conns=…`: tally opens at least 8 connections; `connect_timeout` is capped at 5 s)",
		parse: parseDatabaseURL,
	},
	{
		name:      "TALLY_MASTER_KEY",
		cmds:      []string{"serve", "accounts", "keys create", "keys rewrap"},
		required:  []string{"serve", "accounts", "keys create", "keys rewrap"},
		unsetHint: "it must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)",
		secret:    true,
		doc: "32 random bytes in base64 (`openssl rand -base64 32`). Seals API key secrets and alert " +
			"signing secrets at rest (AES-256-GCM). Without it, stored keys are useless: back it up apart from the database",
		parse: func(c *config, v string) error {
			k, err := secrets.ParseMasterKey(v)
			if err != nil {
				return fmt.Errorf("is invalid: %w (want 32 random bytes in base64)", err)
			}
			c.masterKey = k
			return nil
		},
	},
	{
		name:   "TALLY_MASTER_KEY_PREVIOUS",
		cmds:   []string{"serve", "accounts", "keys create", "keys rewrap"},
		none:   "none",
		secret: true,
		doc:    "comma-separated older master keys that still open secrets, during a rotation",
		parse: func(c *config, v string) error {
			parts := strings.Split(v, ",")
			for i, p := range parts {
				if strings.TrimSpace(p) == "" {
					continue
				}
				k, err := secrets.ParseMasterKey(p)
				if err != nil {
					return fmt.Errorf("is invalid: key %d of %d: %w", i+1, len(parts), err)
				}
				c.previousKeys = append(c.previousKeys, k)
			}
			return nil
		},
	},
	{
		name: "TALLY_ADDR",
		cmds: []string{"serve"},
		def:  ":8080",
		doc:  "listen address",
		parse: func(c *config, v string) error {
			return listenAddr(&c.addr, v, ":8080")
		},
	},
	{
		name: "TALLY_FINALIZE_AFTER",
		cmds: []string{"serve", "dev", "report"},
		def:  "72h",
		doc:  "grace period after a month's end before version 1 is stored (a Go duration)",
		parse: func(c *config, v string) error {
			return positiveDuration(&c.finalizeAfter, v, "72h")
		},
	},
	{
		name: "TALLY_REPORT_INTERVAL",
		cmds: []string{"serve", "dev"},
		def:  "10m",
		doc:  "how often the monthly job looks for months to finalize or revise",
		parse: func(c *config, v string) error {
			return positiveDuration(&c.reportInterval, v, "10m")
		},
	},
	{
		name: "TALLY_FOLD_INTERVAL",
		// bench passes it on to the server it starts.
		cmds: []string{"serve", "dev", "bench"},
		def:  "1s",
		doc:  "how often the background folds accepted events into the per-month rollup",
		parse: func(c *config, v string) error {
			return positiveDuration(&c.foldInterval, v, "1s")
		},
	},
	{
		name: "TALLY_MAX_PENDING",
		// bench passes it on to the server it starts.
		cmds: []string{"serve", "dev", "bench"},
		def:  "2500",
		doc:  "accepted events of one account not yet folded into the rollup above which its next body folds them before it is stored (0: no bound); every read of the account merges them in, so this bounds what a read costs while the account ingests",
		parse: func(c *config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return errors.New("is not a number of events such as 2500 (0 for no bound)")
			}
			c.maxPending = n
			return nil
		},
	},
	{
		name: "TALLY_INGEST_RATE",
		cmds: []string{"serve", "dev"},
		def:  "500",
		doc:  "requests per second per key on `POST …/events` (burst: twice the rate; default burst 1000)",
		parse: func(c *config, v string) error {
			return rateLimit(&c.ingestLimit, v, "500")
		},
	},
	{
		name: "TALLY_TOKEN_RATE",
		cmds: []string{"serve", "dev"},
		def:  "20000",
		doc:  "requests per second per key on mint and verify together (burst: twice the rate; default burst 40 000)",
		parse: func(c *config, v string) error {
			return rateLimit(&c.tokenLimit, v, "20000")
		},
	},
	{
		name: "TALLY_ALERT_INTERVAL",
		cmds: []string{"serve", "dev"},
		def:  "10s",
		doc:  "how often every usage alert is compared with the month's figures, at most 30s (an account's alerts are also compared right after its events are folded)",
		parse: func(c *config, v string) error {
			return positiveDuration(&c.alertInterval, v, "10s")
		},
	},
	{
		name: "TALLY_WEBHOOK_ALLOW_PRIVATE",
		cmds: []string{"serve", "dev"},
		def:  "0",
		// The developer's webhooks go to their own machine, unless the
		// environment says TALLY_WEBHOOK_ALLOW_PRIVATE=0.
		cmdDef: map[string]string{"dev": "1"},
		doc: "`1` (or `true`) lets alert webhooks go to `http` URLs and to loopback, private and link-local addresses: " +
			"for development only. `tally dev` sets it unless the environment says `0` (or `false`)",
		parse: func(c *config, v string) error {
			switch v {
			case "0", "false":
				c.webhookAllowPrivate = false
			case "1", "true":
				c.webhookAllowPrivate = true
			default:
				return errors.New("is not 1 (or true) or 0 (or false)")
			}
			return nil
		},
	},
	{
		name: "TALLY_PPROF_ADDR",
		// bench passes it on to the server it starts.
		cmds: []string{"serve", "dev", "bench"},
		none: "off",
		doc:  "serves Go's pprof on this address (keep it on loopback)",
		parse: func(c *config, v string) error {
			return listenAddr(&c.pprofAddr, v, "127.0.0.1:6060")
		},
	},
	{
		name: "TALLY_BASE_URL",
		cmds: []string{"import"},
		none: "none",
		doc:  "where `tally import` sends (with `TALLY_KEY_SID` and `TALLY_KEY_SECRET`, all three or none); without them it reads `credentials.json` of `--data-dir`",
		parse: func(c *config, v string) error {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errors.New("is not an http or https URL such as http://127.0.0.1:8080")
			}
			c.baseURL = v
			return nil
		},
	},
	{
		name: "TALLY_KEY_SID",
		cmds: []string{"import"},
		none: "none",
		doc:  "the API key `tally import` sends as (role `ingest` or `admin`)",
		parse: func(c *config, v string) error {
			if !usage.IsKeySID(v) {
				return errors.New("is not an API key SID (SK followed by 32 hex digits)")
			}
			c.keySID = v
			return nil
		},
	},
	{
		name:   "TALLY_KEY_SECRET",
		cmds:   []string{"import"},
		none:   "none",
		secret: true,
		doc:    "that key's secret",
		parse: func(c *config, v string) error {
			c.keySecret = v
			return nil
		},
	},
}

// loadConfig reads the variables that command cmd ("serve", "keys
// revoke", …) reads and checks every one; the error names each variable
// that is missing or wrong, and never a secret's value.
func loadConfig(getenv func(string) string, cmd string) (config, error) {
	var c config
	var errs []error
	for _, s := range settings {
		if !s.readBy(cmd) {
			continue
		}
		v := getenv(s.name)
		if v == "" {
			v = s.defaultFor(cmd)
		}
		if v == "" {
			if s.requiredBy(cmd) {
				errs = append(errs, fmt.Errorf("%s is not set: %s", s.name, s.unsetHint))
			}
			continue
		}
		if err := s.parse(&c, v); err != nil {
			if s.secret {
				errs = append(errs, fmt.Errorf("%s %w", s.name, err))
			} else {
				errs = append(errs, fmt.Errorf("%s: %q %w", s.name, v, err))
			}
		}
	}
	if len(errs) > 0 {
		return config{}, errors.Join(errs...)
	}
	if c.masterKey != nil {
		box, err := secrets.NewBox(c.masterKey, c.previousKeys...)
		if err != nil {
			return config{}, fmt.Errorf("TALLY_MASTER_KEY is invalid: %w", err)
		}
		// The box holds the keys from here on; the raw bytes go, so that a
		// config printed by mistake shows none.
		c.box, c.masterKey, c.previousKeys = box, nil, nil
	}
	return c, nil
}

// readBy reports whether command cmd reads s.
func (s setting) readBy(cmd string) bool { return matchCommand(s.cmds, cmd) }

func (s setting) requiredBy(cmd string) bool { return matchCommand(s.required, cmd) }

// defaultFor is s's default in command cmd, "" for none.
func (s setting) defaultFor(cmd string) string {
	for c, d := range s.cmdDef {
		if matchCommand([]string{c}, cmd) {
			return d
		}
	}
	return s.def
}

// matchCommand reports whether cmd is one of cmds or a subcommand of one.
func matchCommand(cmds []string, cmd string) bool {
	return slices.ContainsFunc(cmds, func(c string) bool {
		return cmd == c || strings.HasPrefix(cmd, c+" ")
	})
}

func positiveDuration(dst *time.Duration, v, example string) error {
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return fmt.Errorf("is not a duration such as %s", example)
	case d <= 0:
		return fmt.Errorf("is not a positive duration such as %s", example)
	}
	*dst = d
	return nil
}

// rateLimit reads a per-key rate in requests per second; the burst is
// twice the rate.
func rateLimit(dst *httpapi.Limit, v, example string) error {
	r, err := strconv.ParseFloat(v, 64)
	switch {
	case err != nil:
		return fmt.Errorf("is not a number of requests per second such as %s", example)
	case !(r > 0) || math.IsInf(r, 0):
		return fmt.Errorf("is not a positive number of requests per second such as %s", example)
	}
	*dst = httpapi.Limit{Rate: r, Burst: max(1, int(2*r))}
	return nil
}

func listenAddr(dst *string, v, example string) error {
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		return fmt.Errorf("is not a listen address such as %s (host:port, the host may be empty)", example)
	}
	*dst = v
	return nil
}

// parseDatabaseURL checks the URL as the pool will read it. pgx's error
// quotes the whole connection string with the password masked; only its
// reason is kept, so that no masking it misses can print a password.
func parseDatabaseURL(c *config, v string) error {
	if _, err := pgxpool.ParseConfig(v); err != nil {
		reason := err.Error()
		if i := strings.LastIndex(reason, "`: "); i >= 0 {
			reason = reason[i+len("`: "):]
		} else {
			reason = "cannot be parsed"
		}
		return fmt.Errorf("is invalid: %s (want a PostgreSQL URL or DSN, e.g. postgres://tally@db:5432/tally)", reason)
	}
	c.databaseURL = v
	return nil
}
