package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally/internal/usage"
)

// CreateAccount stores a new account with a fresh SID.
func (s *Store) CreateAccount(ctx context.Context, name string, platform bool) (usage.Account, error) {
	a := usage.Account{SID: usage.NewAccountSID(), Name: name, Platform: platform, CreatedAt: s.now().UTC()}
	_, err := s.pool.Exec(ctx,
		`INSERT INTO accounts (account_sid, name, platform, created_at) VALUES ($1, $2, $3, $4)`,
		a.SID, a.Name, a.Platform, a.CreatedAt)
	if err != nil {
		return usage.Account{}, translate(fmt.Errorf("create account %q: %w", name, err))
	}
	return a, nil
}

const accountColumns = `account_sid AS sid, name, platform, created_at`

// Account returns one account.
func (s *Store) Account(ctx context.Context, sid string) (usage.Account, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+accountColumns+` FROM accounts WHERE account_sid = $1`, sid)
	a, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[usage.Account])
	if err != nil {
		return usage.Account{}, translate(fmt.Errorf("account %s: %w", sid, err))
	}
	return a, nil
}

// Accounts lists every account, oldest first.
func (s *Store) Accounts(ctx context.Context) ([]usage.Account, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY created_at, account_sid`)
	as, err := pgx.CollectRows(rows, pgx.RowToStructByName[usage.Account])
	if err != nil {
		return nil, translate(fmt.Errorf("list accounts: %w", err))
	}
	return as, nil
}

// CreateKey stores a new API key of an account, its secret already sealed by
// the caller (the store never sees a secret in clear).
func (s *Store) CreateKey(ctx context.Context, k usage.Key, sealed []byte) (usage.Key, error) {
	k.CreatedAt = s.now().UTC()
	_, err := s.pool.Exec(ctx,
		`INSERT INTO api_keys (account_sid, key_sid, role, friendly_name, secret_sealed, created_at)
		 VALUES ($1, $2, $3, $4, $5, $6)`,
		k.AccountSID, k.SID, k.Role, k.FriendlyName, sealed, k.CreatedAt)
	if err != nil {
		return usage.Key{}, translate(fmt.Errorf("create key for %s: %w", k.AccountSID, err))
	}
	return k, nil
}

const keyColumns = `key_sid AS sid, account_sid, role, friendly_name, created_at, revoked_at`

// Keys lists the keys of an account, revoked ones included.
func (s *Store) Keys(ctx context.Context, accountSID string) ([]usage.Key, error) {
	rows, _ := s.pool.Query(ctx,
		`SELECT `+keyColumns+` FROM api_keys WHERE account_sid = $1 ORDER BY created_at, key_sid`, accountSID)
	ks, err := pgx.CollectRows(rows, pgx.RowToStructByName[usage.Key])
	if err != nil {
		return nil, translate(fmt.Errorf("list keys of %s: %w", accountSID, err))
	}
	return ks, nil
}

// RevokeKey marks a key of an account revoked. Revoking twice is not an
// error; a key of another account is not found.
func (s *Store) RevokeKey(ctx context.Context, accountSID, keySID string) error {
	tag, err := s.pool.Exec(ctx,
		`UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3)
		 WHERE account_sid = $1 AND key_sid = $2`, accountSID, keySID, s.now().UTC())
	if err != nil {
		return translate(fmt.Errorf("revoke key %s: %w", keySID, err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke key %s of %s: %w", keySID, accountSID, usage.ErrNotFound)
	}
	return nil
}

// SealedKey is a stored API key as authentication loads it: who the key
// acts as once its secret is checked, whether it is revoked, and its secret
// as stored, sealed (only the caller holds the master key that opens it).
// It is usage.Key's counterpart for checking a credential, where usage.Key
// is for listing keys and never carries a secret.
type SealedKey struct {
	Principal usage.Principal
	Revoked   bool
	Sealed    []byte
}

// KeyForAuth loads a key by SID alone, as the Basic auth user names it.
func (s *Store) KeyForAuth(ctx context.Context, keySID string) (SealedKey, error) {
	var r SealedKey
	err := s.pool.QueryRow(ctx,
		`SELECT k.key_sid, k.account_sid, k.role, a.platform, k.revoked_at IS NOT NULL, k.secret_sealed
		 FROM api_keys k JOIN accounts a USING (account_sid) WHERE k.key_sid = $1`, keySID).
		Scan(&r.Principal.KeySID, &r.Principal.AccountSID, &r.Principal.Role, &r.Principal.Platform, &r.Revoked, &r.Sealed)
	if err != nil {
		return SealedKey{}, translate(fmt.Errorf("key %s: %w", keySID, err))
	}
	return r, nil
}

// RewrapSecrets re-seals every stored key secret with rewrap (under a new
// master key), in one transaction: all or nothing. It returns how many keys
// it rewrapped.
func (s *Store) RewrapSecrets(ctx context.Context, rewrap func(keySID string, sealed []byte) ([]byte, error)) (int, error) {
	n := 0
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT key_sid, secret_sealed FROM api_keys ORDER BY key_sid FOR UPDATE`)
		type row struct {
			SID    string
			Sealed []byte
		}
		all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		if err != nil {
			return fmt.Errorf("read secrets: %w", err)
		}
		for _, r := range all {
			sealed, err := rewrap(r.SID, r.Sealed)
			if err != nil {
				return fmt.Errorf("rewrap %s: %w", r.SID, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE api_keys SET secret_sealed = $2 WHERE key_sid = $1`, r.SID, sealed); err != nil {
				return fmt.Errorf("store %s: %w", r.SID, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, translate(fmt.Errorf("rewrap secrets: %w", err))
	}
	return n, nil
}
