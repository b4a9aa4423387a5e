package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/usage"
)

// TestFailedExportIsNotEmpty: a roster CSV whose query fails before its
// first row is a 5xx problem document, not an empty CSV; one that fails
// after rows were sent is cut off (the client sees a broken answer, not a
// short one that looks complete). Both are logged at ERROR.
//
// The failure is real: the stored roster is put behind a view whose filter
// raises an error at a chosen identity, after the rows before it were sent.
func TestFailedExportIsNotEmpty(t *testing.T) {
	e := newEnv(t)
	const users = 1500
	var nd strings.Builder
	for i := range users {
		nd.WriteString(fmt.Sprintf(`{"id":"x%d","activity":"send","source":"sdk","service_sid":"IS1","identity":"u%04d","occurred_at":"2026-09-05T12:00:00Z"}`+"\n", i, i))
	}
	r := e.do(e.srv, e.keys[e.acme][usage.RoleIngest], "POST", "/v1/accounts/"+e.acme+"/events", "application/x-ndjson", strings.NewReader(nd.String()))
	if r.status != 200 {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	if r := e.post(e.keys[e.acme][usage.RoleAdmin], "/v1/accounts/"+e.acme+"/reports/2026-09/run", ""); r.status != 200 {
		t.Fatalf("run: %d %s", r.status, r.body)
	}
	// boom fails on one identity, set by setBoom. It names the identity
	// in its body rather than reading it from a table: on Citus it runs on
	// the workers, inside a query on a shard, which may not query a
	// distributed table; CREATE OR REPLACE reaches every node.
	boom := func(t *testing.T, identity string) {
		t.Helper()
		stmt := `CREATE OR REPLACE FUNCTION boom(i text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
		 BEGIN IF i = ` + pgQuote(identity) + ` THEN RAISE EXCEPTION 'boom at %', i; END IF; RETURN true; END $$`
		if _, err := e.pool.Exec(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	boom(t, "")
	for _, stmt := range []string{
		`ALTER TABLE report_roster RENAME TO report_roster_real`,
		// Sorted below the filter, so rows leave one by one until the failing one.
		`CREATE VIEW report_roster AS SELECT * FROM (SELECT * FROM report_roster_real ORDER BY service_sid, identity) s WHERE boom(s.identity)`,
	} {
		if _, err := e.pool.Exec(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	finance := e.keys[e.acme][usage.RoleFinance]
	export := func(t *testing.T) (*http.Response, []byte, error) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", e.srv.URL+"/v1/accounts/"+e.acme+"/reports/2026-09/users?format=csv", nil)
		req.SetBasicAuth(finance.sid, finance.secret)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	setBoom := boom
	t.Run("intact", func(t *testing.T) {
		setBoom(t, "")
		resp, body, err := export(t)
		if err != nil || resp.StatusCode != 200 || strings.Count(string(body), "\n") != users+1 {
			t.Fatalf("status %d, %d lines, %v", resp.StatusCode, strings.Count(string(body), "\n"), err)
		}
	})
	t.Run("fails before the first row", func(t *testing.T) {
		setBoom(t, "u0000")
		logged := strings.Count(e.logs.String(), `"level":"ERROR"`)
		resp, body, err := export(t)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode < 500 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("status %d %s, want a 5xx problem: %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if strings.Count(e.logs.String(), `"level":"ERROR"`) == logged {
			t.Fatal("the failure was not logged at ERROR")
		}
	})
	t.Run("fails after rows were sent", func(t *testing.T) {
		setBoom(t, "u1200")
		logged := strings.Count(e.logs.String(), `"level":"ERROR"`)
		resp, body, err := export(t)
		if pgtest.Engine() == pgtest.Citus && err == nil && resp.StatusCode >= 500 {
			// Citus's coordinator gathers a query's rows from the workers
			// before it returns the first: the failure comes before any row
			// is sent, and is answered as one.
			t.Logf("on Citus the failure came before the first row: status %d", resp.StatusCode)
		} else if err == nil {
			t.Fatalf("status %d and %d complete lines: a failed export reads as a complete one", resp.StatusCode, strings.Count(string(body), "\n"))
		}
		t.Logf("status %d, %d bytes, then %v", resp.StatusCode, len(body), err)
		if strings.Count(e.logs.String(), `"level":"ERROR"`) == logged {
			t.Fatal("the failure was not logged at ERROR")
		}
	})
}

// pgQuote quotes a string as an SQL literal.
func pgQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
