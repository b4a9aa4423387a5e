package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/tallyhq/tally/internal/keys"
	"github.com/tallyhq/tally/internal/usage"
)

type accountJSON struct {
	SID       string    `json:"sid"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

func toAccountJSON(a usage.Account) accountJSON {
	return accountJSON{SID: a.SID, Name: a.Name, CreatedAt: a.CreatedAt.UTC()}
}

type createAccountRequest struct {
	Name string `json:"name"`
}

func (s *Server) createAccount(c echo.Context) error {
	if err := s.authorizePlatform(c, usage.RoleAdmin); err != nil {
		return err
	}
	var req createAccountRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if msg := usage.CheckAccountName(req.Name); msg != "" {
		return usage.Invalid("name", "%s", msg)
	}
	a, err := s.store.CreateAccount(c.Request().Context(), req.Name, false)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toAccountJSON(a))
}

func (s *Server) listAccounts(c echo.Context) error {
	if err := s.authorizePlatform(c, usage.RoleAdmin); err != nil {
		return err
	}
	as, err := s.store.Accounts(c.Request().Context())
	if err != nil {
		return err
	}
	out := struct {
		Accounts []accountJSON `json:"accounts"`
	}{Accounts: make([]accountJSON, 0, len(as))}
	for _, a := range as {
		out.Accounts = append(out.Accounts, toAccountJSON(a))
	}
	return c.JSON(http.StatusOK, out)
}

type keyJSON struct {
	SID          string     `json:"sid"`
	Secret       string     `json:"secret,omitempty"`
	Role         usage.Role `json:"role"`
	FriendlyName string     `json:"friendly_name"`
	CreatedAt    time.Time  `json:"created_at"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
}

type createKeyRequest struct {
	Role         usage.Role `json:"role"`
	FriendlyName string     `json:"friendly_name"`
}

func (s *Server) createKey(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorize(c, account, usage.RoleAdmin); err != nil {
		return err
	}
	var req createKeyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if !req.Role.Valid() {
		return usage.Invalid("role", "must be admin, ingest or finance")
	}
	if len(req.FriendlyName) > 256 || !utf8.ValidString(req.FriendlyName) || strings.IndexByte(req.FriendlyName, 0) >= 0 {
		return usage.Invalid("friendly_name", "must be at most 256 bytes of UTF-8 text")
	}
	k, secret, err := keys.Create(c.Request().Context(), s.store, s.box, account, req.Role, req.FriendlyName)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, keyJSON{SID: k.SID, Secret: secret, Role: k.Role,
		FriendlyName: k.FriendlyName, CreatedAt: k.CreatedAt})
}

func (s *Server) listKeys(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorize(c, account, usage.RoleAdmin); err != nil {
		return err
	}
	ks, err := s.store.Keys(c.Request().Context(), account)
	if err != nil {
		return err
	}
	out := struct {
		Keys []keyJSON `json:"keys"`
	}{Keys: make([]keyJSON, 0, len(ks))}
	for _, k := range ks {
		out.Keys = append(out.Keys, keyJSON{SID: k.SID, Role: k.Role, FriendlyName: k.FriendlyName,
			CreatedAt: k.CreatedAt.UTC(), RevokedAt: k.RevokedAt})
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) revokeKey(c echo.Context) error {
	account := c.Param("account_sid")
	if err := s.authorize(c, account, usage.RoleAdmin); err != nil {
		return err
	}
	sid := c.Param("key_sid")
	if !usage.IsKeySID(sid) {
		return fmt.Errorf("key %q: %w", sid, usage.ErrNotFound)
	}
	if err := s.store.RevokeKey(c.Request().Context(), account, sid); err != nil {
		return err
	}
	s.keys.forget(sid) // immediate here; other replicas within the key TTL
	return c.NoContent(http.StatusNoContent)
}
