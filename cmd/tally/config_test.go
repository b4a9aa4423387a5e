package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/alerts"
	"github.com/tallyhq/tally/internal/billing"
	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/secrets"
)

// Fixed keys, so that a failure message can be compared; never printed.
const (
	testMaster   = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
	testPrevious = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
	testDBURL    = "postgres://tally:hunter2@db:5432/tally"
	testKeySID   = "SK0123456789abcdef0123456789abcdef"
)

// serveEnv is the least that tally serve starts with, plus extra.
func serveEnv(extra ...string) map[string]string {
	env := map[string]string{"DATABASE_URL": testDBURL, "TALLY_MASTER_KEY": testMaster}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

func envOf(kvs ...string) map[string]string {
	env := map[string]string{}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

func TestConfig(t *testing.T) {
	type field func(config) any
	var (
		dbURL          field = func(c config) any { return c.databaseURL }
		addr           field = func(c config) any { return c.addr }
		finalizeAfter  field = func(c config) any { return c.finalizeAfter }
		reportInterval field = func(c config) any { return c.reportInterval }
		foldInterval   field = func(c config) any { return c.foldInterval }
		maxPending     field = func(c config) any { return c.maxPending }
		alertInterval  field = func(c config) any { return c.alertInterval }
		ingestLimit    field = func(c config) any { return c.ingestLimit }
		tokenLimit     field = func(c config) any { return c.tokenLimit }
		allowPrivate   field = func(c config) any { return c.webhookAllowPrivate }
		pprofAddr      field = func(c config) any { return c.pprofAddr }
		baseURL        field = func(c config) any { return c.baseURL }
		keySID         field = func(c config) any { return c.keySID }
		keySecret      field = func(c config) any { return c.keySecret }
		hasBox         field = func(c config) any { return c.box != nil }
		// opens is which of the two keys' seals the box opens.
		opens field = func(c config) any {
			if c.box == nil {
				return "no box"
			}
			var got []string
			for _, k := range []string{testMaster, testPrevious} {
				key, _ := secrets.ParseMasterKey(k)
				b, _ := secrets.NewBox(key)
				sealed := b.Seal("s3cret", "SKx")
				if s, err := c.box.Open(sealed, "SKx"); err == nil && s == "s3cret" {
					got = append(got, map[string]string{testMaster: "master", testPrevious: "previous"}[k])
				}
			}
			return strings.Join(got, ",")
		}
	)
	tests := []struct {
		name string
		cmd  string
		env  map[string]string
		// got, want: one field after a successful load.
		got  field
		want any
		// wantErr: the whole error, when the load must fail.
		wantErr string
	}{
		// DATABASE_URL: required where a command needs a database; dev
		// and bench start a private one without it.
		{name: "database url", cmd: "serve", env: serveEnv(), got: dbURL, want: testDBURL},
		{name: "database dsn", cmd: "migrate", env: envOf("DATABASE_URL=host=db user=tally password=hunter2"), got: dbURL, want: "host=db user=tally password=hunter2"},
		{name: "no database: serve", cmd: "serve", env: envOf("TALLY_MASTER_KEY=" + testMaster),
			wantErr: "DATABASE_URL is not set: point it at the PostgreSQL database, e.g. postgres://tally@db:5432/tally"},
		{name: "no database: migrate", cmd: "migrate", env: envOf(), wantErr: "DATABASE_URL is not set: point it at the PostgreSQL database, e.g. postgres://tally@db:5432/tally"},
		{name: "no database: keys revoke", cmd: "keys revoke", env: envOf(), wantErr: "DATABASE_URL is not set: point it at the PostgreSQL database, e.g. postgres://tally@db:5432/tally"},
		{name: "no database: report run", cmd: "report run", env: envOf(), wantErr: "DATABASE_URL is not set: point it at the PostgreSQL database, e.g. postgres://tally@db:5432/tally"},
		{name: "no database: dev", cmd: "dev", env: envOf(), got: dbURL, want: ""},
		{name: "no database: bench", cmd: "bench", env: envOf(), got: dbURL, want: ""},
		{name: "database url: bad port", cmd: "dev", env: envOf("DATABASE_URL=postgres://tally:hunter2@db:port/tally"),
			wantErr: "DATABASE_URL is invalid: invalid port (want a PostgreSQL URL or DSN, e.g. postgres://tally@db:5432/tally)"},
		{name: "database dsn: bad sslmode", cmd: "migrate", env: envOf("DATABASE_URL=password='hunter2' host=db sslmode=maybe"),
			wantErr: "DATABASE_URL is invalid: failed to configure TLS (sslmode is invalid) (want a PostgreSQL URL or DSN, e.g. postgres://tally@db:5432/tally)"},

		// TALLY_MASTER_KEY and TALLY_MASTER_KEY_PREVIOUS.
		{name: "master key", cmd: "serve", env: serveEnv(), got: opens, want: "master"},
		{name: "no master key: serve", cmd: "serve", env: envOf("DATABASE_URL=" + testDBURL),
			wantErr: "TALLY_MASTER_KEY is not set: it must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)"},
		{name: "no master key: accounts create", cmd: "accounts create", env: envOf("DATABASE_URL=" + testDBURL),
			wantErr: "TALLY_MASTER_KEY is not set: it must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)"},
		{name: "no master key: keys rewrap", cmd: "keys rewrap", env: envOf("DATABASE_URL=" + testDBURL),
			wantErr: "TALLY_MASTER_KEY is not set: it must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)"},
		{name: "keys revoke needs no master key", cmd: "keys revoke", env: envOf("DATABASE_URL=" + testDBURL), got: hasBox, want: false},
		{name: "dev ignores the master key", cmd: "dev", env: envOf("TALLY_MASTER_KEY=c2hvcnQ="), got: hasBox, want: false},
		{name: "master key: short", cmd: "keys create", env: serveEnv("TALLY_MASTER_KEY=c2hvcnQ="),
			wantErr: "TALLY_MASTER_KEY is invalid: master key is 5 bytes, want 32 (want 32 random bytes in base64)"},
		{name: "master key: not base64", cmd: "serve", env: serveEnv("TALLY_MASTER_KEY=not*base64"),
			wantErr: "TALLY_MASTER_KEY is invalid: master key is not base64 (want 32 random bytes in base64)"},
		{name: "previous key", cmd: "keys rewrap", env: serveEnv("TALLY_MASTER_KEY_PREVIOUS=" + testPrevious), got: opens, want: "master,previous"},
		{name: "previous keys: blanks skipped", cmd: "serve", env: serveEnv("TALLY_MASTER_KEY_PREVIOUS= ," + testPrevious + ","), got: opens, want: "master,previous"},
		{name: "previous keys: second bad", cmd: "serve", env: serveEnv("TALLY_MASTER_KEY_PREVIOUS=" + testPrevious + ",c2hvcnQ="),
			wantErr: "TALLY_MASTER_KEY_PREVIOUS is invalid: key 2 of 2: master key is 5 bytes, want 32"},

		// TALLY_ADDR, serve's alone (dev has --addr).
		{name: "addr default", cmd: "serve", env: serveEnv(), got: addr, want: ":8080"},
		{name: "addr", cmd: "serve", env: serveEnv("TALLY_ADDR=127.0.0.1:0"), got: addr, want: "127.0.0.1:0"},
		{name: "addr: no port", cmd: "serve", env: serveEnv("TALLY_ADDR=8080"),
			wantErr: `TALLY_ADDR: "8080" is not a listen address such as :8080 (host:port, the host may be empty)`},
		{name: "dev ignores addr", cmd: "dev", env: envOf("TALLY_ADDR=8080"), got: addr, want: ""},

		// The durations.
		{name: "finalize after default", cmd: "serve", env: serveEnv(), got: finalizeAfter, want: billing.DefaultFinalizeAfter},
		{name: "finalize after", cmd: "report run", env: serveEnv("TALLY_FINALIZE_AFTER=90s"), got: finalizeAfter, want: 90 * time.Second},
		{name: "finalize after: not a duration", cmd: "report run", env: serveEnv("TALLY_FINALIZE_AFTER=3 days"),
			wantErr: `TALLY_FINALIZE_AFTER: "3 days" is not a duration such as 72h`},
		{name: "report interval default", cmd: "serve", env: serveEnv(), got: reportInterval, want: 10 * time.Minute},
		{name: "report interval", cmd: "dev", env: envOf("TALLY_REPORT_INTERVAL=1h"), got: reportInterval, want: time.Hour},
		{name: "report interval: zero", cmd: "serve", env: serveEnv("TALLY_REPORT_INTERVAL=0s"),
			wantErr: `TALLY_REPORT_INTERVAL: "0s" is not a positive duration such as 10m`},
		{name: "fold interval default", cmd: "dev", env: envOf(), got: foldInterval, want: time.Second},
		{name: "fold interval", cmd: "serve", env: serveEnv("TALLY_FOLD_INTERVAL=250ms"), got: foldInterval, want: 250 * time.Millisecond},
		{name: "max pending default", cmd: "serve", env: serveEnv(), got: maxPending, want: int64(2500)},
		{name: "max pending", cmd: "dev", env: envOf("TALLY_MAX_PENDING=20000"), got: maxPending, want: int64(20_000)},
		{name: "max pending: no bound", cmd: "serve", env: serveEnv("TALLY_MAX_PENDING=0"), got: maxPending, want: int64(0)},
		{name: "max pending: negative", cmd: "serve", env: serveEnv("TALLY_MAX_PENDING=-1"),
			wantErr: `TALLY_MAX_PENDING: "-1" is not a number of events such as 2500 (0 for no bound)`},
		{name: "fold interval: not a duration", cmd: "serve", env: serveEnv("TALLY_FOLD_INTERVAL=abc"),
			wantErr: `TALLY_FOLD_INTERVAL: "abc" is not a duration such as 1s`},
		{name: "fold interval: bench checks what it passes on", cmd: "bench", env: envOf("TALLY_FOLD_INTERVAL=1"),
			wantErr: `TALLY_FOLD_INTERVAL: "1" is not a duration such as 1s`},
		{name: "alert interval default", cmd: "serve", env: serveEnv(), got: alertInterval, want: alerts.DefaultEvaluateEvery},
		{name: "alert interval", cmd: "serve", env: serveEnv("TALLY_ALERT_INTERVAL=2s"), got: alertInterval, want: 2 * time.Second},
		{name: "alert interval: negative", cmd: "dev", env: envOf("TALLY_ALERT_INTERVAL=-10s"),
			wantErr: `TALLY_ALERT_INTERVAL: "-10s" is not a positive duration such as 10s`},

		// The rates: the burst is twice the rate, at least 1.
		{name: "ingest rate default", cmd: "serve", env: serveEnv(), got: ingestLimit, want: httpapi.DefaultIngestLimit},
		{name: "ingest rate", cmd: "serve", env: serveEnv("TALLY_INGEST_RATE=250"), got: ingestLimit, want: httpapi.Limit{Rate: 250, Burst: 500}},
		{name: "ingest rate: fraction", cmd: "dev", env: envOf("TALLY_INGEST_RATE=0.25"), got: ingestLimit, want: httpapi.Limit{Rate: 0.25, Burst: 1}},
		{name: "ingest rate: not a number", cmd: "serve", env: serveEnv("TALLY_INGEST_RATE=fast"),
			wantErr: `TALLY_INGEST_RATE: "fast" is not a number of requests per second such as 500`},
		{name: "ingest rate: zero", cmd: "serve", env: serveEnv("TALLY_INGEST_RATE=0"),
			wantErr: `TALLY_INGEST_RATE: "0" is not a positive number of requests per second such as 500`},
		{name: "token rate default", cmd: "dev", env: envOf(), got: tokenLimit, want: httpapi.DefaultTokenLimit},
		{name: "token rate", cmd: "serve", env: serveEnv("TALLY_TOKEN_RATE=1e9"), got: tokenLimit, want: httpapi.Limit{Rate: 1e9, Burst: 2e9}},
		{name: "token rate: NaN", cmd: "serve", env: serveEnv("TALLY_TOKEN_RATE=NaN"),
			wantErr: `TALLY_TOKEN_RATE: "NaN" is not a positive number of requests per second such as 20000`},
		{name: "token rate: infinite", cmd: "serve", env: serveEnv("TALLY_TOKEN_RATE=+Inf"),
			wantErr: `TALLY_TOKEN_RATE: "+Inf" is not a positive number of requests per second such as 20000`},

		// TALLY_WEBHOOK_ALLOW_PRIVATE: off in serve, on in dev unless the
		// environment says otherwise.
		{name: "allow private: serve default", cmd: "serve", env: serveEnv(), got: allowPrivate, want: false},
		{name: "allow private: dev default", cmd: "dev", env: envOf(), got: allowPrivate, want: true},
		{name: "allow private: dev told 0", cmd: "dev", env: envOf("TALLY_WEBHOOK_ALLOW_PRIVATE=0"), got: allowPrivate, want: false},
		{name: "allow private: dev told false", cmd: "dev", env: envOf("TALLY_WEBHOOK_ALLOW_PRIVATE=false"), got: allowPrivate, want: false},
		{name: "allow private: dev told 1", cmd: "dev", env: envOf("TALLY_WEBHOOK_ALLOW_PRIVATE=1"), got: allowPrivate, want: true},
		{name: "allow private: serve told 1", cmd: "serve", env: serveEnv("TALLY_WEBHOOK_ALLOW_PRIVATE=1"), got: allowPrivate, want: true},
		{name: "allow private: serve told true", cmd: "serve", env: serveEnv("TALLY_WEBHOOK_ALLOW_PRIVATE=true"), got: allowPrivate, want: true},
		{name: "allow private: serve told 0", cmd: "serve", env: serveEnv("TALLY_WEBHOOK_ALLOW_PRIVATE=0"), got: allowPrivate, want: false},
		{name: "allow private: yes", cmd: "serve", env: serveEnv("TALLY_WEBHOOK_ALLOW_PRIVATE=yes"),
			wantErr: `TALLY_WEBHOOK_ALLOW_PRIVATE: "yes" is not 1 (or true) or 0 (or false)`},
		{name: "allow private: dev checks too", cmd: "dev", env: envOf("TALLY_WEBHOOK_ALLOW_PRIVATE=TRUE"),
			wantErr: `TALLY_WEBHOOK_ALLOW_PRIVATE: "TRUE" is not 1 (or true) or 0 (or false)`},

		// TALLY_PPROF_ADDR.
		{name: "pprof off", cmd: "serve", env: serveEnv(), got: pprofAddr, want: ""},
		{name: "pprof", cmd: "dev", env: envOf("TALLY_PPROF_ADDR=127.0.0.1:6060"), got: pprofAddr, want: "127.0.0.1:6060"},
		{name: "pprof: no port", cmd: "serve", env: serveEnv("TALLY_PPROF_ADDR=localhost"),
			wantErr: `TALLY_PPROF_ADDR: "localhost" is not a listen address such as 127.0.0.1:6060 (host:port, the host may be empty)`},

		// tally import's target.
		{name: "base url", cmd: "import", env: envOf("TALLY_BASE_URL=http://127.0.0.1:8080"), got: baseURL, want: "http://127.0.0.1:8080"},
		{name: "base url: no scheme", cmd: "import", env: envOf("TALLY_BASE_URL=localhost:8080"),
			wantErr: `TALLY_BASE_URL: "localhost:8080" is not an http or https URL such as http://127.0.0.1:8080`},
		{name: "key sid", cmd: "import", env: envOf("TALLY_KEY_SID=" + testKeySID), got: keySID, want: testKeySID},
		{name: "key sid: not a sid", cmd: "import", env: envOf("TALLY_KEY_SID=AC0123456789abcdef0123456789abcdef"),
			wantErr: `TALLY_KEY_SID: "AC0123456789abcdef0123456789abcdef" is not an API key SID (SK followed by 32 hex digits)`},
		{name: "key secret", cmd: "import", env: envOf("TALLY_KEY_SECRET=hunter2"), got: keySecret, want: "hunter2"},
		{name: "serve ignores import's", cmd: "serve", env: serveEnv("TALLY_BASE_URL=nowhere", "TALLY_KEY_SID=x"), got: baseURL, want: ""},

		// A command reads only its own variables: behaviour as before.
		{name: "import ignores the server's", cmd: "import", env: envOf("TALLY_FOLD_INTERVAL=abc", "DATABASE_URL=postgres://x:y@h:port/z"), got: foldInterval, want: time.Duration(0)},
		{name: "migrate ignores the server's", cmd: "migrate", env: envOf("DATABASE_URL="+testDBURL, "TALLY_INGEST_RATE=0", "TALLY_MASTER_KEY=bad"), got: dbURL, want: testDBURL},
		{name: "healthcheck reads nothing", cmd: "healthcheck", env: envOf("TALLY_FOLD_INTERVAL=abc"), got: dbURL, want: ""},

		// Every bad variable is named at once, in the table's order.
		{name: "several bad", cmd: "serve", env: envOf("TALLY_FOLD_INTERVAL=abc", "TALLY_INGEST_RATE=-1"),
			wantErr: "DATABASE_URL is not set: point it at the PostgreSQL database, e.g. postgres://tally@db:5432/tally\n" +
				"TALLY_MASTER_KEY is not set: it must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)\n" +
				`TALLY_FOLD_INTERVAL: "abc" is not a duration such as 1s` + "\n" +
				`TALLY_INGEST_RATE: "-1" is not a positive number of requests per second such as 500`},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		for k := range tt.env {
			covered[k] = true
		}
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(func(k string) string { return tt.env[k] }, tt.cmd)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("loadConfig(%s) = %v\nwant error %s", tt.cmd, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig(%s): %v", tt.cmd, err)
			}
			if got := tt.got(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("loadConfig(%s): got %#v, want %#v", tt.cmd, got, tt.want)
			}
		})
	}
	for _, s := range settings {
		if !covered[s.name] {
			t.Errorf("no case sets %s", s.name)
		}
	}
}

// TestConfigSecrets: no error, help or printed config shows a secret's
// value.
func TestConfigSecrets(t *testing.T) {
	const pw = "hunter2"
	bad := []map[string]string{
		envOf("DATABASE_URL=postgres://tally:" + pw + "@db:port/tally"),
		envOf("DATABASE_URL=postgres://tally:" + pw + "@db/tally?sslmode=maybe"),
		envOf("DATABASE_URL=postgres://tally:hun ter2@db/tally"),
		envOf("DATABASE_URL=host=db password=" + pw + " port=x"),
		envOf("DATABASE_URL=host=db password='" + pw + "' sslmode=maybe"),
		serveEnv("TALLY_MASTER_KEY=" + pw),
		serveEnv("TALLY_MASTER_KEY=" + pw + "hunter2hunter2hunter2hunter2hunter2"),
		serveEnv("TALLY_MASTER_KEY_PREVIOUS=" + testPrevious + "," + pw),
	}
	for _, env := range bad {
		_, err := loadConfig(func(k string) string { return env[k] }, "serve")
		if err == nil {
			t.Errorf("%v: no error", slices.Sorted(maps.Keys(env)))
			continue
		}
		for _, s := range []string{pw, "hun ter2", testPrevious, testMaster} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("the error shows a secret: %v", err)
			}
		}
	}
	env := serveEnv("TALLY_MASTER_KEY_PREVIOUS="+testPrevious, "TALLY_KEY_SECRET="+pw)
	c, err := loadConfig(func(k string) string { return env[k] }, "serve")
	if err != nil {
		t.Fatal(err)
	}
	ic, err := loadConfig(func(k string) string { return env[k] }, "import")
	if err != nil {
		t.Fatal(err)
	}
	printed := fmt.Sprintf("%v %+v %#v %s %v %+v %#v", c, c, c, c, ic, ic, ic)
	for _, s := range []string{pw, testMaster, testPrevious} {
		if strings.Contains(printed, s) {
			t.Errorf("a printed config shows a secret: %s", printed)
		}
	}
	var out bytes.Buffer
	getenv := func(k string) string { return env[k] }
	for _, cmd := range [][]string{{"--help"}, {"serve", "--help"}, {"dev", "--help"}, {"import", "--help"}, {"keys", "rewrap", "--help"}} {
		if err := run(t.Context(), cmd, getenv, &out, &out); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	for _, s := range []string{pw, testMaster, testPrevious} {
		if strings.Contains(out.String(), s) {
			t.Errorf("help shows a secret:\n%s", out.String())
		}
	}
}

// TestConfigBeforeStart: a bad value stops a command before it starts
// anything: dev has not made its data dir, serve has not dialled the
// database.
func TestConfigBeforeStart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	env := envOf("TALLY_FOLD_INTERVAL=abc")
	var out bytes.Buffer
	err := run(t.Context(), []string{"dev", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, func(k string) string { return env[k] }, &out, &out)
	if want := `TALLY_FOLD_INTERVAL: "abc" is not a duration such as 1s`; err == nil || err.Error() != want {
		t.Fatalf("dev: %v, want %s", err, want)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("dev made its data dir before refusing its configuration: %v", err)
	}
	// Were the value read late, serve would be listening by then, and
	// would log so.
	env = serveEnv("TALLY_ADDR=127.0.0.1:0", "TALLY_ALERT_INTERVAL=soon")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	begin := time.Now()
	err = run(ctx, []string{"serve"}, func(k string) string { return env[k] }, &out, &out)
	if want := `TALLY_ALERT_INTERVAL: "soon" is not a duration such as 10s`; err == nil || err.Error() != want {
		t.Fatalf("serve: %v, want %s", err, want)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("serve took %v to refuse its configuration", d)
	}
	if out.Len() != 0 {
		t.Errorf("output before refusing: %s", out.String())
	}
}

var update = flag.Bool("update", false, "rewrite the README's configuration table from the settings")

const (
	tableStart = "<!-- generated from cmd/tally/config.go: go test ./cmd/tally -run TestConfigDocs -update -->\n"
	tableEnd   = "<!-- end of the generated table -->\n"
)

// TestConfigDocs: the README's table and tally serve --help say what the
// code reads, defaults included.
func TestConfigDocs(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start, end := strings.Index(readme, tableStart), strings.Index(readme, tableEnd)
	if start < 0 || end < start {
		t.Fatalf("README.md lacks the markers of the configuration table:\n%s%s", tableStart, tableEnd)
	}
	if got, want := readme[start+len(tableStart):end], configTable(); got != want {
		if !*update {
			t.Fatalf("README.md's configuration table is not the settings' (go test ./cmd/tally -run TestConfigDocs -update):\ngot:\n%s\nwant:\n%s", got, want)
		}
		readme = readme[:start+len(tableStart)] + want + readme[end:]
		if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"serve", "--help"}, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	for _, s := range settings {
		line := regexp.MustCompile(`(?m)^  ` + s.name + ` +(.*)$`).FindStringSubmatch(help)
		switch {
		case !s.readBy("serve"):
			if line != nil {
				t.Errorf("serve --help lists %s, which serve does not read", s.name)
			}
		case line == nil:
			t.Errorf("serve --help lacks %s:\n%s", s.name, help)
		case s.requiredBy("serve") && line[1] != "required":
			t.Errorf("serve --help: %s %s, want required", s.name, line[1])
		case s.def != "" && line[1] != "default "+s.def:
			t.Errorf("serve --help: %s %s, want default %s", s.name, line[1], s.def)
		}
	}
	out.Reset()
	if err := run(t.Context(), []string{"dev", "--help"}, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "  TALLY_WEBHOOK_ALLOW_PRIVATE  default 1\n") {
		t.Errorf("dev --help does not give dev's default of TALLY_WEBHOOK_ALLOW_PRIVATE:\n%s", out.String())
	}
}
