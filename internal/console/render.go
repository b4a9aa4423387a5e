package console

import (
	"bytes"
	"fmt"
	"html/template"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/usage"
)

// pages holds one template set per page: the layout and the page's own
// file, parsed once at start.
type pages struct {
	byName map[string]*template.Template
}

var pageNames = []string{"login", "error", "accounts", "month", "reports", "identities", "keys"}

var funcs = template.FuncMap{
	"int":     formatInt,
	"float":   formatFloat,
	"decimal": groupDigits,
	"time":    formatTime,
	"iso":     isoTime,
	"percent": percent,
	"deref":   func(p *int) int { return *p },
	"admin":   func(p *usage.Principal) bool { return p != nil && p.Role == usage.RoleAdmin },
}

func mustParsePages() *pages {
	ps := &pages{byName: make(map[string]*template.Template, len(pageNames))}
	for _, name := range pageNames {
		t := template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS,
			"templates/layout.html", "templates/"+name+".html"))
		ps.byName[name] = t
	}
	return ps
}

// view is what every page template gets: the page's own data, the CSRF
// token for its forms, and who is signed in (nil on the sign-in form).
type view struct {
	CSRF string
	Me   *usage.Principal
	Nav  *nav
	Page any
}

// nav is the account the page is about, for the links of the header; the
// links shown are those the key's role may follow.
type nav struct {
	AccountSID  string
	AccountName string
	Month       string
	Current     string // the page: month, reports, identities, keys, accounts
}

// render writes a page. The page is rendered into a buffer first, so a
// template error becomes a 500 instead of half a page.
func (h *Handler) render(c echo.Context, status int, name string, page any) error {
	t, ok := h.pages.byName[name]
	if !ok {
		return fmt.Errorf("no page %q", name)
	}
	v := view{Page: page}
	v.CSRF, _ = c.Get(csrfField).(string)
	if p, ok := c.Get(principalKey).(usage.Principal); ok {
		v.Me = &p
	}
	v.Nav, _ = c.Get(navKey).(*nav)
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	return c.HTMLBlob(status, buf.Bytes())
}

const navKey = "console.nav"

// setNav names the account a page is about, for the header's links.
func (h *Handler) setNav(c echo.Context, accountSID, month, current string) error {
	n := &nav{AccountSID: accountSID, Month: month, Current: current}
	if accountSID != "" {
		a, err := h.store.Account(c.Request().Context(), accountSID)
		if err != nil {
			return err
		}
		n.AccountName = a.Name
	}
	c.Set(navKey, n)
	return nil
}
