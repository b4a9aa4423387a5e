package console

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/keys"
	"github.com/tallyhq/tally/internal/usage"
)

type keysPage struct {
	AccountSID string
	Keys       []usage.Key
	Roles      []usage.Role
	Self       string // the signed-in key: revoking it ends this session
	// Created is the key just made, with its secret: shown once, here.
	Created      *usage.Key
	Secret       string
	Message      string
	FriendlyName string
}

// keys lists an account's keys, with the forms to create and revoke.
func (h *Handler) keys(c echo.Context) error {
	account := c.Param("account_sid")
	if err := h.authorize(c, account, usage.RoleAdmin); err != nil {
		return err
	}
	return h.renderKeys(c, http.StatusOK, keysPage{AccountSID: account})
}

func (h *Handler) renderKeys(c echo.Context, status int, page keysPage) error {
	ks, err := h.store.Keys(c.Request().Context(), page.AccountSID)
	if err != nil {
		return err
	}
	page.Keys = ks
	page.Roles = []usage.Role{usage.RoleFinance, usage.RoleAdmin, usage.RoleIngest}
	page.Self = principal(c).KeySID
	if err := h.setNav(c, page.AccountSID, "", "keys"); err != nil {
		return err
	}
	return h.render(c, status, "keys", page)
}

// createKey makes a key as POST /v1/accounts/{AC}/keys does and shows its
// secret on the page it answers with, the only time it is shown.
func (h *Handler) createKey(c echo.Context) error {
	account := c.Param("account_sid")
	if err := h.authorize(c, account, usage.RoleAdmin); err != nil {
		return err
	}
	role := usage.Role(c.FormValue("role"))
	name := c.FormValue("friendly_name")
	page := keysPage{AccountSID: account, FriendlyName: name}
	switch {
	case !role.Valid():
		page.Message = "Choose a role: admin, ingest or finance."
	case len(name) > 256 || !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0:
		page.Message = "The friendly name must be at most 256 bytes of text."
	}
	if page.Message != "" {
		return h.renderKeys(c, http.StatusUnprocessableEntity, page)
	}
	k, secret, err := keys.Create(c.Request().Context(), h.store, h.box, account, role, name)
	if err != nil {
		return err
	}
	page.Created, page.Secret, page.FriendlyName = &k, secret, ""
	return h.renderKeys(c, http.StatusOK, page)
}

// revokeKey revokes a key of the account; the API stops accepting it within
// its key cache's lifetime and every console session of it ends at once.
func (h *Handler) revokeKey(c echo.Context) error {
	account := c.Param("account_sid")
	if err := h.authorize(c, account, usage.RoleAdmin); err != nil {
		return err
	}
	sid := c.Param("key_sid")
	if !usage.IsKeySID(sid) {
		return fmt.Errorf("key %q: %w", sid, usage.ErrNotFound)
	}
	if err := h.store.RevokeKey(c.Request().Context(), account, sid); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/accounts/"+account+"/keys")
}
