package httpapi

import (
	"context"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// CreateKey makes an API key for an account and returns it with its secret
// in clear, which is shown once and stored only sealed. The CLI and the API
// share it.
func CreateKey(ctx context.Context, store *postgres.Store, box *secrets.Box, accountSID string, role usage.Role, friendlyName string) (usage.Key, string, error) {
	secret := usage.NewSecret()
	k := usage.Key{SID: usage.NewKeySID(), AccountSID: accountSID, Role: role, FriendlyName: friendlyName}
	k, err := store.CreateKey(ctx, k, box.Seal(secret, k.SID))
	if err != nil {
		return usage.Key{}, "", err
	}
	return k, secret, nil
}
