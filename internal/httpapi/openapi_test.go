package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/tallyhq/tally/internal/httpapi"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

var echoParam = regexp.MustCompile(`:([a-z_]+)`)

// TestOpenAPIMatchesRoutes keeps /openapi.yaml true: every registered route
// is documented, every documented operation is registered, and every
// request example validates against its schema.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, err := libopenapi.NewDocument(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("build model: %v", err)
	}
	if v := model.Model.Version; v != "3.1.0" {
		t.Fatalf("openapi %s, want 3.1.0", v)
	}
	documented := map[string]bool{}
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}

	pool, _ := newEnvPool(t)
	e := httpapi.New(httpapi.Config{Store: postgres.New(pool, time.Now)})
	registered := map[string]bool{}
	for _, r := range e.Routes() {
		if strings.HasSuffix(r.Path, "*") || r.Method == echo.RouteNotFound {
			continue // echo's own not-found routes
		}
		registered[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	for op := range registered {
		if !documented[op] {
			t.Errorf("route %s is not in openapi.yaml", op)
		}
	}
	for op := range documented {
		if !registered[op] {
			t.Errorf("openapi.yaml documents %s, which is not registered", op)
		}
	}
	if len(registered) < 8 {
		t.Fatalf("only %d routes registered", len(registered))
	}

	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	examples := 0
	var ops []string
	for op := range documented {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method, operation := range item.GetOperations().FromOldest() {
			if operation.RequestBody == nil {
				continue
			}
			mt, ok := operation.RequestBody.Content.Get("application/json")
			if !ok || mt.Example == nil {
				continue
			}
			var example any
			if err := mt.Example.Decode(&example); err != nil {
				t.Fatal(err)
			}
			body, _ := json.Marshal(example)
			url := strings.NewReplacer("{account_sid}", usage.NewAccountSID(), "{key_sid}", usage.NewKeySID()).Replace(path)
			req, _ := http.NewRequest(strings.ToUpper(method), "http://127.0.0.1:8080"+url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.SetBasicAuth(usage.NewKeySID(), "secret")
			if ok, verrs := v.ValidateHttpRequest(req); !ok {
				for _, ve := range verrs {
					t.Errorf("example of %s %s: %s %s", method, path, ve.Message, ve.Reason)
				}
			}
			examples++
		}
	}
	if examples < 3 {
		t.Fatalf("only %d request examples checked", examples)
	}
}
