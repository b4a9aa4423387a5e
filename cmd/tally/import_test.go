package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/keys"
	"github.com/tallyhq/tally/internal/pgcluster"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// importTally is a tally served in-process on a private cluster, for the
// import tests: the server is real, the CLI runs as run() or as the binary.
type importTally struct {
	url, account  string
	ingest, admin credentialKey
}

func startImportTally(t *testing.T) importTally {
	t.Helper()
	ctx := t.Context()
	cluster, err := pgcluster.Start(ctx, filepath.Join(t.TempDir(), "pg"), pgcluster.Options{Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Stop(context.Background()) })
	conn, err := pgx.Connect(ctx, cluster.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE tally_import")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, cluster.ConnString("tally_import"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	store := postgres.New(pool, time.Now)
	box, err := secrets.NewBox(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	acct, err := store.CreateAccount(ctx, "Import", false)
	if err != nil {
		t.Fatal(err)
	}
	it := importTally{account: acct.SID}
	for _, k := range []struct {
		role usage.Role
		into *credentialKey
	}{{usage.RoleIngest, &it.ingest}, {usage.RoleAdmin, &it.admin}} {
		key, secret, err := keys.Create(ctx, store, box, acct.SID, k.role, string(k.role))
		if err != nil {
			t.Fatal(err)
		}
		*k.into = credentialKey{AccountSID: acct.SID, APIKeySID: key.SID, APIKeySecret: secret}
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Store: store, Box: box}))
	t.Cleanup(srv.Close)
	it.url = srv.URL
	return it
}

// env gives the environment of a shell with the ingest key exported.
func (it importTally) env(name string) string {
	return map[string]string{"TALLY_BASE_URL": it.url, "TALLY_KEY_SID": it.ingest.APIKeySID, "TALLY_KEY_SECRET": it.ingest.APIKeySecret}[name]
}

func noEnv(string) string { return "" }

// tallyImport runs `tally import args…` in-process; stdout is not a terminal.
func tallyImport(t *testing.T, getenv func(string) string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(t.Context(), append([]string{"import"}, args...), getenv, &out, &errb)
	return out.String(), errb.String(), err
}

func importEvent(id, identity, at string) string {
	return fmt.Sprintf(`{"id":%q,"activity":"send","source":"sdk","service_sid":"IS1","identity":%q,"occurred_at":%q}`, id, identity, at)
}

func writeFile(t *testing.T, path string, lines ...string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeGzip(t *testing.T, path string, lines ...string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(strings.Join(lines, "\n")))
	zw.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestImport drives tally import against a real tally: plain and gzipped
// files, invalid lines reported with their place and not sent, the exit
// status, a second run that finds only duplicates, late events, the
// credentials of a data dir, and (with the binary) standard input and the
// progress bar on a terminal.
func TestImport(t *testing.T) {
	it := startImportTally(t)
	dir := t.TempDir()
	plain := writeFile(t, filepath.Join(dir, "events.ndjson"),
		importEvent("e1", "alice", "2026-11-02T10:00:00Z"),
		importEvent("e2", "bob", "2026-11-02T10:00:01Z"),
		"",
		`{"id":"e3","activity":"send","source":"sdk","service_sid":"IS1","identity":"carol","occurred_at":"2026-11-02T10:00:02Z"`,
		importEvent("e4", "dave", "2026-11-02T10:00:03Z")+"\r",
		`{"id":"e5","activity":"create","source":"sdk","service_sid":"IS1","identity":"erin","occurred_at":"2026-11-02T10:00:04Z","colour":"red"}`,
		"   ",
		importEvent("e6", "frank", "2026-11-02T10:00:05Z"),
		importEvent("", "grace", "2026-11-02T10:00:06Z"),
	)
	var gzLines []string
	for i := range 5 {
		gzLines = append(gzLines, importEvent(fmt.Sprint("z", i), fmt.Sprint("zed", i), "2026-11-03T00:00:00Z"))
	}
	gz := writeGzip(t, filepath.Join(dir, "more.ndjson.gz"), gzLines...)

	t.Run("rejected lines", func(t *testing.T) {
		stdout, stderr, err := tallyImport(t, it.env, plain, gz)
		if want := "imported 12 events: 9 accepted, 0 duplicates, 0 late, 3 rejected\n"; stdout != want {
			t.Errorf("stdout %q, want %q", stdout, want)
		}
		if err == nil {
			t.Errorf("import with rejected lines succeeded, want exit status 1")
		}
		for _, want := range []string{
			plain + ":4: not valid JSON",
			plain + ":6: colour: unknown field; source: activity create cannot come from source sdk",
			plain + ":9: id: is required",
		} {
			if !strings.Contains(stderr, want+"\n") {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
		if n := strings.Count(stderr, plain+":"); n != 3 {
			t.Errorf("stderr names %d lines, want 3:\n%s", n, stderr)
		}
	})
	t.Run("again: all duplicates", func(t *testing.T) {
		stdout, _, err := tallyImport(t, it.env, plain, gz)
		if want := "imported 12 events: 0 accepted, 9 duplicates, 0 late, 3 rejected\n"; stdout != want || err == nil {
			t.Errorf("stdout %q, err %v; want %q and an error", stdout, err, want)
		}
	})
	t.Run("clean file: exit 0", func(t *testing.T) {
		clean := writeFile(t, filepath.Join(dir, "clean.ndjson"), importEvent("c1", "alice", "2026-11-04T00:00:00Z"), importEvent("c2", "heidi", "2026-11-04T00:00:00Z"))
		stdout, stderr, err := tallyImport(t, it.env, clean)
		if want := "imported 2 events: 2 accepted, 0 duplicates, 0 late, 0 rejected\n"; stdout != want || err != nil || stderr != "" {
			t.Errorf("stdout %q, stderr %q, err %v; want %q, nothing, nil", stdout, stderr, err, want)
		}
	})
	t.Run("late events", func(t *testing.T) {
		// October is past its grace period: running the job stores its final
		// version, so events of October accepted afterwards are late.
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, it.url+"/v1/accounts/"+it.account+"/reports/2026-10/run", nil)
		req.SetBasicAuth(it.admin.APIKeySID, it.admin.APIKeySecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("report run: %d", resp.StatusCode)
		}
		late := writeFile(t, filepath.Join(dir, "late.ndjson"), importEvent("l1", "ivan", "2026-10-20T00:00:00Z"),
			importEvent("l2", "judy", "2026-10-21T00:00:00Z"), importEvent("n1", "ken", "2026-11-20T00:00:00Z"))
		stdout, _, err := tallyImport(t, it.env, late)
		if want := "imported 3 events: 3 accepted, 0 duplicates, 2 late, 0 rejected\n"; stdout != want || err != nil {
			t.Errorf("stdout %q, err %v; want %q", stdout, err, want)
		}
	})
	t.Run("credentials.json", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		os.MkdirAll(dataDir, 0o700)
		b, _ := json.Marshal(credentials{BaseURL: it.url, Account: it.admin})
		os.WriteFile(filepath.Join(dataDir, "credentials.json"), b, 0o600)
		f := writeFile(t, filepath.Join(dir, "dd.ndjson"), importEvent("d1", "mallory", "2026-11-05T00:00:00Z"))
		stdout, _, err := tallyImport(t, noEnv, "--data-dir", dataDir, "--account", it.account, f)
		if want := "imported 1 events: 1 accepted, 0 duplicates, 0 late, 0 rejected\n"; stdout != want || err != nil {
			t.Errorf("stdout %q, err %v; want %q", stdout, err, want)
		}
		_, _, err = tallyImport(t, noEnv, "--data-dir", filepath.Join(dir, "nowhere"), f)
		if err == nil || !strings.Contains(err.Error(), "TALLY_KEY_SID") {
			t.Errorf("no credentials: err %v, want it to say how to give them", err)
		}
		partial := func(k string) string {
			if k == "TALLY_BASE_URL" {
				return it.url
			}
			return ""
		}
		if _, _, err := tallyImport(t, partial, f); err == nil || !strings.Contains(err.Error(), "TALLY_KEY_SECRET") {
			t.Errorf("partial environment: err %v, want it to name what is missing", err)
		}
	})

	bin := buildTally(t)
	var many []string
	for i := range 30_000 {
		many = append(many, importEvent(fmt.Sprint("m", i), fmt.Sprint("user", i%5000), "2026-11-06T00:00:00Z"))
	}
	big := writeFile(t, filepath.Join(dir, "big.ndjson"), many...)
	shellEnv := cleanEnv("TALLY_BASE_URL="+it.url, "TALLY_KEY_SID="+it.ingest.APIKeySID, "TALLY_KEY_SECRET="+it.ingest.APIKeySecret)

	t.Run("standard input, not a terminal", func(t *testing.T) {
		f, err := os.Open(big)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd := exec.CommandContext(t.Context(), bin, "import", "-")
		cmd.Env, cmd.Stdin = shellEnv, f
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("tally import -: %v\n%s", err, stderr.String())
		}
		if want := "imported 30000 events: 30000 accepted, 0 duplicates, 0 late, 0 rejected\n"; stdout.String() != want {
			t.Errorf("stdout %q, want only %q", stdout.String(), want)
		}
	})
	t.Run("progress bar on a terminal", func(t *testing.T) {
		script, err := exec.LookPath("script")
		if err != nil {
			t.Skip("no script(1) to give the import a terminal")
		}
		// script runs the command on a pseudo-terminal: its standard output
		// is a terminal, as in a person's shell.
		cmd := exec.CommandContext(t.Context(), script, "-qefc", bin+" import "+big, "/dev/null")
		cmd.Env = shellEnv
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tally import on a terminal: %v\n%q", err, out)
		}
		screen := string(out)
		for _, want := range []string{"%", "events/s", "events, "} {
			if !strings.Contains(screen, want) {
				t.Errorf("the terminal shows no %q:\n%q", want, screen)
			}
		}
		lines := strings.Split(strings.TrimRight(screen, "\r\n"), "\n")
		last := lines[len(lines)-1]
		if i := strings.LastIndex(last, "\r"); i >= 0 { // the bar, cleared on the same line
			last = last[i+1:]
		}
		if want := "imported 30000 events: 0 accepted, 30000 duplicates, 0 late, 0 rejected"; strings.TrimSpace(last) != want {
			t.Errorf("last line %q, want %q", last, want)
		}
	})
}
