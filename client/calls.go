package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// MintToken mints a Twilio-format access token for an identity of the
// account, signed with the client's key, for the SDK to connect with.
// Minting records no activity.
func (c *Client) MintToken(ctx context.Context, r TokenRequest) (*Token, error) {
	if r.TTL%time.Second != 0 {
		return nil, fmt.Errorf("tally client: TTL %s is not a whole number of seconds", r.TTL)
	}
	account, err := c.accountSID(ctx)
	if err != nil {
		return nil, err
	}
	type grants struct {
		Chat *ChatGrant `json:"chat,omitempty"`
		Sync *SyncGrant `json:"sync,omitempty"`
	}
	in := struct {
		Identity string `json:"identity"`
		TTL      int64  `json:"ttl,omitempty"`
		Grants   grants `json:"grants"`
	}{r.Identity, int64(r.TTL / time.Second), grants{r.Chat, r.Sync}}
	var out struct {
		Token
		TTL int64 `json:"ttl"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/accounts/"+account+"/tokens", in, &out); err != nil {
		return nil, fmt.Errorf("mint token for %q: %w", r.Identity, err)
	}
	t := out.Token
	t.TTL = time.Duration(out.TTL) * time.Second
	return &t, nil
}

// VerifyToken checks an access token minted for the account (by tally or by
// Twilio's server libraries with a tally key) and records an authenticate
// activity for its identity in each granted service, once per token. A
// refused token is a *Error with Status 401 and its Reason (§5).
func (c *Client) VerifyToken(ctx context.Context, token string) (*Verification, error) {
	account, err := c.accountSID(ctx)
	if err != nil {
		return nil, err
	}
	var v Verification
	in := struct {
		Token string `json:"token"`
	}{token}
	if err := c.call(ctx, http.MethodPost, "/v1/accounts/"+account+"/tokens/verify", in, &v); err != nil {
		return nil, fmt.Errorf("verify token: %w", err)
	}
	return &v, nil
}

// Report returns the account's report of a month, "YYYY-MM": its latest
// stored version, or the figures as of now (provisional) when none is
// stored. It needs a key of role finance or admin.
func (c *Client) Report(ctx context.Context, month string) (*Report, error) {
	account, err := c.accountSID(ctx)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := c.call(ctx, http.MethodGet, "/v1/accounts/"+account+"/reports/"+url.PathEscape(month), nil, &r); err != nil {
		return nil, fmt.Errorf("report %s: %w", month, err)
	}
	return &r, nil
}
