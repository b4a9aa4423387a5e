// Package keys makes API keys: the one place that draws a key's SID and
// secret and seals the secret before it is stored, for the API, the
// console and the CLI alike.
package keys

import (
	"context"
	"fmt"

	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/secrets"
	"github.com/tallyhq/tally/internal/usage"
)

// Create makes an API key for an account and returns it with its secret in
// clear, which is shown once and stored only sealed under the master key.
func Create(ctx context.Context, store *postgres.Store, box *secrets.Box, accountSID string, role usage.Role, friendlyName string) (usage.Key, string, error) {
	secret := usage.NewSecret()
	k := usage.Key{SID: usage.NewKeySID(), AccountSID: accountSID, Role: role, FriendlyName: friendlyName}
	k, err := store.CreateKey(ctx, k, box.Seal(secret, k.SID))
	if err != nil {
		return usage.Key{}, "", fmt.Errorf("create %s key for %s: %w", role, accountSID, err)
	}
	return k, secret, nil
}
