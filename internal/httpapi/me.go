package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// meResponse says who a key is (§8).
type meResponse struct {
	APIKeySID  string `json:"api_key_sid"`
	AccountSID string `json:"account_sid"`
	Role       string `json:"role"`
	Platform   bool   `json:"platform"`
}

// me answers any valid key with its own identity, so that a client holding
// only a key SID and secret learns which account to name in its paths.
// authenticate has already refused wrong, unknown and revoked keys.
func (s *Server) me(c echo.Context) error {
	p := principal(c)
	return c.JSON(http.StatusOK, meResponse{
		APIKeySID: p.KeySID, AccountSID: p.AccountSID, Role: string(p.Role), Platform: p.Platform,
	})
}
