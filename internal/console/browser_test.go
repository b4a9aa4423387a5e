package console_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tallyhq/tally/internal/console"
	"github.com/tallyhq/tally/internal/usage"
)

// updateDocs rewrites the screenshots of the README (docs/console-*.png).
var updateDocs = flag.Bool("update-docs", false, "write the README's console screenshots into docs/")

// chromium finds Debian's chromium. Without it the browser tests skip,
// except under CI, where a missing browser is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed, and CI is set: install it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed: apt-get install chromium")
	return ""
}

// newChrome starts a headless chromium with a fresh profile; each call is a
// separate browser, so sign-ins do not share cookies.
func newChrome(t *testing.T, path string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// visit opens a page and returns the HTTP status the browser got.
func visit(t *testing.T, ctx context.Context, url string) int64 {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(tctx, chromedp.Navigate(url))
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return resp.Status
}

func eval[T any](t *testing.T, ctx context.Context, js string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, opts...))
	if err != nil {
		t.Fatalf("evaluate %.80s: %v", js, err)
	}
	return v
}

// pageMetrics reads the data-metric hooks as §12 defines them, in the page.
const pageMetrics = `(() => {
  const out = {};
  for (const el of document.querySelectorAll("[data-metric]")) {
    const row = el.closest("[data-account],[data-service],[data-identity]");
    let key = el.dataset.metric;
    if (row) {
      const parts = ["account", "service", "identity"].filter(k => row.dataset[k] !== undefined).map(k => row.dataset[k]);
      key = parts.join("|") + "/" + key;
    }
    out[key] = el.textContent.trim().replace(/[, \u2009]/g, "");
  }
  return out;
})()`

// alertFields reads the alerts table as alertRows does: data-alert →
// data-field → a <time>'s datetime, else the text.
const alertFields = `(() => {
  const out = {};
  for (const row of document.querySelectorAll("[data-alert]")) {
    const f = {};
    for (const el of row.querySelectorAll("[data-field]")) {
      f[el.dataset.field] = el.tagName === "TIME" ? el.getAttribute("datetime") :
        el.dataset.field === "threshold" ? el.textContent.trim().replace(/,/g, "") : el.textContent.trim();
    }
    out[row.dataset.alert] = f;
  }
  return out;
})()`

// unlabelled lists the visible form controls without a label.
const unlabelled = `Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea"))
  .filter(el => el.labels.length === 0 && !el.getAttribute("aria-label")).map(el => el.name)`

// signInThroughForm types the key into the sign-in form and submits it.
func signInThroughForm(t *testing.T, ctx context.Context, base string, c cred) int64 {
	t.Helper()
	visit(t, ctx, base+"/console/login")
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(tctx,
		chromedp.SendKeys(chromedp.CSS("#key_sid"), c.sid),
		chromedp.SendKeys(chromedp.CSS("#secret"), c.secret),
		chromedp.Submit(chromedp.CSS("#secret")))
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	return resp.Status
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBrowser drives chromium through the console: it signs in through the
// form as each role, reads the figures and compares them with the API,
// opens every page, checks that the console's own style and script run
// under its Content-Security-Policy, that every input has a label, that the
// keyboard reaches the form, that the month page fits a narrow screen, and
// saves screenshots (TALLY_SCREENSHOTS=dir keeps them; -update-docs writes
// the README's two).
func TestBrowser(t *testing.T) {
	path := chromium(t)
	e := newEnv(t, console.Config{})
	e.seed()
	alertSIDs := e.seedAlerts()
	base := e.srv.URL
	shots := os.Getenv("TALLY_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	acme := "/console/accounts/" + e.acme

	type visitor struct {
		name     string
		account  string
		role     usage.Role
		platform bool
	}
	for _, v := range []visitor{
		{"acme-finance", e.acme, usage.RoleFinance, false},
		{"acme-admin", e.acme, usage.RoleAdmin, false},
		{"platform-finance", e.platform, usage.RoleFinance, true},
		{"platform-admin", e.platform, usage.RoleAdmin, true},
	} {
		t.Run(v.name, func(t *testing.T) {
			e := e.with(t)
			ctx := newChrome(t, path)
			c := e.keys[v.account][v.role]
			if status := signInThroughForm(t, ctx, base, c); status != 200 {
				t.Fatalf("after signing in: status %d", status)
			}
			loc := eval[string](t, ctx, `location.pathname`)
			wantHome := "/console/accounts/" + v.account
			if v.platform {
				wantHome = "/console/accounts"
			}
			if loc != wantHome {
				t.Errorf("signed in at %s, want %s", loc, wantHome)
			}

			// The month page's figures are the API's.
			for _, month := range []string{"2026-10", "2026-11"} {
				if status := visit(t, ctx, base+acme+"?month="+month); status != 200 {
					t.Fatalf("month %s: %d", month, status)
				}
				got := eval[map[string]string](t, ctx, pageMetrics)
				api := decode(t, e.mustAPI(c, "GET", "/v1/accounts/"+e.acme+"/reports/"+month, "", 200).body)
				bill := api["billing"].(map[string]any)
				for k, want := range map[string]string{"active_users": jsonText(api["active_users"]),
					"billable_users": jsonText(bill["billable_users"]), "amount": jsonText(bill["amount"])} {
					if got[k] != want {
						t.Errorf("%s %s in the browser: %q, API %q", month, k, got[k], want)
					}
				}
				points := eval[[]map[string]string](t, ctx, `Array.from(document.querySelectorAll('svg[data-chart="active-users"] [data-month]')).map(p => ({month: p.dataset.month, value: p.dataset.value, title: p.querySelector("title") ? p.querySelector("title").textContent : ""}))`)
				if len(points) != 13 || points[12]["month"] != month || points[12]["value"] != jsonText(api["active_users"]) {
					t.Errorf("%s chart: %v", month, points)
				}
				if month == "2026-10" && v.name == "acme-finance" {
					screenshot(t, ctx, shots, "month-"+v.name+".png")
					if *updateDocs {
						screenshot(t, ctx, "../../docs", "console-month.png")
					}
				}
			}
			// The usage alerts, for admins only, each row as the API has it,
			// and on a phone the table scrolls inside itself, not the page.
			visit(t, ctx, base+acme)
			rows := eval[map[string]map[string]string](t, ctx, alertFields)
			if v.role != usage.RoleAdmin {
				if n := eval[int](t, ctx, `document.querySelectorAll("[data-alerts]").length`); n != 0 || len(rows) != 0 {
					t.Errorf("%s sees the alerts section", v.role)
				}
			} else {
				_, want := e.apiAlertRows(c, e.acme)
				if len(rows) != len(alertSIDs) {
					t.Errorf("alerts in the browser %v, want %d", rows, len(alertSIDs))
				}
				for _, sid := range alertSIDs {
					delete(rows[sid], "created_at") // not in the API's deliveries; TestAccountPageListsAlerts checks it
					if fmt.Sprint(rows[sid]) != fmt.Sprint(want[sid]) {
						t.Errorf("alert %s in the browser:\n got %v\nwant %v", sid, rows[sid], want[sid])
					}
				}
				if err := chromedp.Do(ctx, chromedp.EmulateViewport(375, 812)); err != nil {
					t.Fatal(err)
				}
				visit(t, ctx, base+acme)
				if over := eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth`); over {
					t.Error("with alerts, the month page scrolls sideways on a 375 px screen")
				}
				if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
					t.Fatal(err)
				}
				visit(t, ctx, base+acme)
				screenshot(t, ctx, shots, v.name+"-month-with-alerts.png")
			}

			// The stylesheet and the script loaded under the policy.
			if m := eval[string](t, ctx, `getComputedStyle(document.body).margin`); m != "0px" {
				t.Errorf("the console's stylesheet did not apply (body margin %q)", m)
			}

			pages := []struct {
				path  string
				roles []usage.Role
			}{
				{acme, financeRoles},
				{acme + "/reports/2026-10", financeRoles},
				{acme + "/identities?month=2026-10", adminRoles},
				{acme + "/keys", adminRoles},
			}
			if v.platform {
				pages = append(pages, struct {
					path  string
					roles []usage.Role
				}{"/console/accounts", financeRoles})
			}
			for _, p := range pages {
				want := int64(403)
				for _, r := range p.roles {
					if r == v.role {
						want = 200
					}
				}
				if status := visit(t, ctx, base+p.path); status != want {
					t.Errorf("%s: %d, want %d", p.path, status, want)
				}
				if bad := eval[[]string](t, ctx, unlabelled); len(bad) > 0 {
					t.Errorf("%s: inputs without a label: %v", p.path, bad)
				}
				name := strings.NewReplacer("/console/accounts/"+e.acme, "acme", "/", "-", "?", "-", "=", "-").Replace(p.path)
				screenshot(t, ctx, shots, v.name+"-"+strings.Trim(name, "-")+".png")
			}

			// The downloads, fetched by the page under its session, are the
			// API's bytes.
			visit(t, ctx, base+acme+"/reports/2026-10")
			links := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("a[href*='/export?']")).map(a => a.getAttribute("href"))`)
			if len(links) != 6 { // versions 2 and 1, three formats each
				t.Errorf("export links %v, want 6", links)
			}
			for _, l := range links {
				got := eval[string](t, ctx, fmt.Sprintf(`fetch(%q).then(r => r.text())`, l), chromedp.EvalAwaitPromise)
				apiPath := apiPathOf(e.acme, l)
				if want := string(e.mustAPI(c, "GET", apiPath, "", 200).body); got != want {
					t.Errorf("%s: differs from GET %s", l, apiPath)
				}
			}

			if v.role == usage.RoleAdmin {
				visit(t, ctx, base+acme+"/identities?month=2026-10")
				got := eval[map[string]string](t, ctx, pageMetrics)
				api := decode(t, e.mustAPI(c, "GET", "/v1/accounts/"+e.acme+"/identities/stats?month=2026-10", "", 200).body)
				for k, val := range api {
					if n, ok := val.(json.Number); ok && got[k] != n.String() {
						t.Errorf("identities %s in the browser: %q, API %s", k, got[k], n)
					}
				}
				if v.name == "acme-admin" && *updateDocs {
					screenshot(t, ctx, "../../docs", "console-identities.png")
				}
				// Create a key through the form: the secret shown once works
				// on the API, and the copy button's script ran.
				visit(t, ctx, base+acme+"/keys")
				tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := chromedp.RunResponse(tctx,
					chromedp.SendKeys(chromedp.CSS("#friendly_name"), "made in chromium"),
					chromedp.Submit(chromedp.CSS("#friendly_name")))
				cancel()
				if err != nil {
					t.Fatalf("create key: %v", err)
				}
				sid := eval[string](t, ctx, `document.getElementById("created-sid").textContent`)
				secret := eval[string](t, ctx, `document.getElementById("created-secret").textContent`)
				// finance (the form's first role) reads reports and may not post events.
				e.mustAPI(cred{sid, secret}, "GET", "/v1/accounts/"+e.acme+"/reports", "", 200)
				e.mustAPI(cred{sid, secret}, "POST", "/v1/accounts/"+e.acme+"/events", `{"events":[]}`, 403)
				if hidden := eval[bool](t, ctx, `document.querySelector("button[data-copy]").hidden`); hidden {
					t.Error("the copy button is still hidden: console.js did not run")
				}
				screenshot(t, ctx, shots, v.name+"-key-created.png")
			}

			// Sign out through the header's form: pages want a session again.
			tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := chromedp.RunResponse(tctx, chromedp.Submit(chromedp.CSS(`form[action="/console/logout"] button`)))
			cancel()
			if err != nil {
				t.Fatalf("sign out: %v", err)
			}
			visit(t, ctx, base+acme)
			if loc := eval[string](t, ctx, `location.pathname`); loc != "/console/login" {
				t.Errorf("after signing out, %s opens %s", acme, loc)
			}
		})
	}

	t.Run("keyboard and narrow screen", func(t *testing.T) {
		e := e.with(t)
		ctx := newChrome(t, path)
		visit(t, ctx, base+"/console/login")
		var focus []string
		for range 3 {
			focus = append(focus, eval[string](t, ctx, `document.activeElement.id || document.activeElement.tagName`))
			if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
				t.Fatal(err)
			}
		}
		if strings.Join(focus, ",") != "key_sid,secret,BUTTON" {
			t.Errorf("keyboard focus moves %v, want key_sid, secret, the button", focus)
		}
		if status := signInThroughForm(t, ctx, base, e.keys[e.acme][usage.RoleFinance]); status != 200 {
			t.Fatalf("sign in: %d", status)
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(375, 812)); err != nil {
			t.Fatal(err)
		}
		visit(t, ctx, base+acme+"?month=2026-11")
		if over := eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth`); over {
			t.Error("the month page scrolls sideways on a 375 px screen")
		}
		screenshot(t, ctx, shots, "narrow-month.png")
	})
	t.Logf("screenshots in %s", shots)
}

// apiPathOf maps a console export link to the API request with the same
// answer.
func apiPathOf(account, link string) string {
	i := strings.Index(link, "/reports/")
	month := link[i+len("/reports/") : i+len("/reports/")+7]
	q := link[strings.Index(link, "?")+1:]
	version := ""
	if j := strings.Index(q, "version="); j >= 0 {
		version = q[j+len("version="):]
	}
	base := "/v1/accounts/" + account + "/reports/" + month
	switch {
	case strings.HasPrefix(q, "format=json"):
		return base + "?version=" + version
	case strings.HasPrefix(q, "format=csv"):
		return base + "?format=csv&version=" + version
	default:
		return base + "/users?format=csv&version=" + version
	}
}
