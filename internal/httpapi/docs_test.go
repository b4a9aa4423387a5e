package httpapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pb33f/libopenapi"

	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
)

// TestDocsPage serves GET /docs without a database or credentials and
// checks that it is one self-contained HTML page naming every operation of
// openapi.yaml, its only style allowed by hash in its CSP.
func TestDocsPage(t *testing.T) {
	// Nothing listens there: the page needs no database.
	pool, err := pgxpool.New(t.Context(), "postgres://tally@127.0.0.1:1/tally?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	box, _ := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Store: postgres.New(pool, nil), Box: box}))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /docs: %d: %.300s", resp.StatusCode, page)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q, want text/html", ct)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}

	// Self-contained: no script, no external resource, and the inline style
	// is the one the policy allows.
	for _, bad := range []string{"<script", "<link", "src=", "<iframe", `href="http`, "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	styles := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindAllStringSubmatch(page, -1)
	if len(styles) != 1 {
		t.Fatalf("%d style elements, want 1", len(styles))
	}
	sum := sha256.Sum256([]byte(styles[0][1]))
	if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, "style-src "+h) {
		t.Errorf("Content-Security-Policy %q does not allow the page's style (%s)", csp, h)
	}

	// Every operation of the document, with its summary.
	doc, err := libopenapi.NewDocument(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	text := html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page, ""))
	paths := 0
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		paths++
		if !strings.Contains(page, ">"+html.EscapeString(path)+"</") {
			t.Errorf("page lacks the path %s", path)
		}
		for method, op := range item.GetOperations().FromOldest() {
			if !strings.Contains(page, `id="`+method+"-") {
				t.Errorf("page lacks an anchor for %s %s", method, path)
			}
			summary := strings.Join(strings.Fields(strings.ReplaceAll(op.Summary, "`", "")), " ")
			if !strings.Contains(text, summary) {
				t.Errorf("page lacks the summary of %s %s: %q", method, path, summary)
			}
		}
	}
	if paths < 10 {
		t.Fatalf("only %d paths in openapi.yaml", paths)
	}
	for _, want := range []string{"Schemas", `id="schema-Event"`, "idempotency key per account", "401"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
