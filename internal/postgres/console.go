package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally/internal/usage"
)

// What the web console (internal/console) needs beyond the API's queries:
// its sign-in sessions, every stored version of a month, and the accounts
// table of platform keys.

// CreateSession stores a console session for a key, keyed by the SHA-256 of
// its token (the token itself is never stored), and drops expired sessions
// on the way, so the table holds only live ones.
func (s *Store) CreateSession(ctx context.Context, tokenHash []byte, keySID string, expiresAt time.Time) error {
	now := s.now().UTC()
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= $1`, now); err != nil {
			return fmt.Errorf("drop expired sessions: %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO console_sessions (token_hash, key_sid, created_at, expires_at)
			VALUES ($1, $2, $3, $4)`, tokenHash, keySID, now, expiresAt.UTC())
		return err
	})
	if err != nil {
		return translate(fmt.Errorf("create console session for %s: %w", keySID, err))
	}
	return nil
}

// Session returns who a console session acts as. A session that expired,
// was ended, or whose key is revoked is not found: the key is read on every
// request, so revoking it ends its sessions at once, on every replica.
func (s *Store) Session(ctx context.Context, tokenHash []byte) (usage.Principal, error) {
	var p usage.Principal
	err := s.pool.QueryRow(ctx, `SELECT k.key_sid, k.account_sid, k.role, a.platform
		FROM console_sessions cs
		JOIN api_keys k ON k.key_sid = cs.key_sid
		JOIN accounts a ON a.account_sid = k.account_sid
		WHERE cs.token_hash = $1 AND cs.expires_at > $2 AND k.revoked_at IS NULL`,
		tokenHash, s.now().UTC()).Scan(&p.KeySID, &p.AccountSID, &p.Role, &p.Platform)
	if err != nil {
		return usage.Principal{}, translate(fmt.Errorf("console session: %w", err))
	}
	return p, nil
}

// EndSession deletes a console session; ending one that does not exist is
// not an error (logging out twice is harmless).
func (s *Store) EndSession(ctx context.Context, tokenHash []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE token_hash = $1`, tokenHash); err != nil {
		return translate(fmt.Errorf("end console session: %w", err))
	}
	return nil
}

// Versions returns every stored version of an account's month, newest
// first; none is not an error.
func (s *Store) Versions(ctx context.Context, accountSID string, m usage.Month) ([]usage.Report, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+versionColumns+` FROM report_versions
		WHERE account_sid = $1 AND month = $2 ORDER BY version DESC`, accountSID, m.Start())
	if err != nil {
		return nil, translate(fmt.Errorf("versions of %s %s: %w", accountSID, m, err))
	}
	defer rows.Close()
	var out []usage.Report
	for rows.Next() {
		r := usage.Report{AccountSID: accountSID, Month: m}
		if err := scanVersion(rows, &r); err != nil {
			return nil, translate(fmt.Errorf("versions of %s %s: %w", accountSID, m, err))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(fmt.Errorf("versions of %s %s: %w", accountSID, m, err))
	}
	return out, nil
}

// AccountMonth is one line of the console's accounts table.
type AccountMonth struct {
	Account usage.Account
	// ActiveUsers is the month's figure as the account's report gives it:
	// its latest stored version, else the provisional count.
	ActiveUsers int64
}

// AccountsMonth lists every account, oldest first, with its active users
// in month m: the counts the API's report would give. It folds nothing, so
// it waits for no fold: the months of accounts with no event pending are
// counted grouped by account_sid (which Citus pushes down to every worker
// whole), and each account with events pending is counted alone, merging
// its own (ActiveUsers).
func (s *Store) AccountsMonth(ctx context.Context, m usage.Month) ([]AccountMonth, error) {
	pending, err := s.pendingAccounts(ctx)
	if err != nil {
		return nil, err
	}
	accounts, err := s.Accounts(ctx)
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int64, len(accounts))
	rows, err := s.pool.Query(ctx, `SELECT account_sid, count(*) FROM month_users WHERE month = $1 GROUP BY account_sid`, m.Start())
	if err != nil {
		return nil, translate(fmt.Errorf("active users of %s: %w", m, err))
	}
	var sid string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&sid, &n}, func() error { counts[sid] = n; return nil }); err != nil {
		return nil, translate(fmt.Errorf("active users of %s: %w", m, err))
	}
	for _, a := range pending {
		if counts[a], err = s.ActiveUsers(ctx, a, m); err != nil {
			return nil, err
		}
	}
	// A stored version's figure wins over the rollup's, as in Months.
	rows, err = s.pool.Query(ctx, `SELECT DISTINCT ON (account_sid) account_sid, active_users
		FROM report_versions WHERE month = $1 ORDER BY account_sid, version DESC`, m.Start())
	if err != nil {
		return nil, translate(fmt.Errorf("versions of %s: %w", m, err))
	}
	if _, err := pgx.ForEachRow(rows, []any{&sid, &n}, func() error { counts[sid] = n; return nil }); err != nil {
		return nil, translate(fmt.Errorf("versions of %s: %w", m, err))
	}
	out := make([]AccountMonth, len(accounts))
	for i, a := range accounts {
		out[i] = AccountMonth{Account: a, ActiveUsers: counts[a.SID]}
	}
	return out, nil
}
