package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TakeLease takes or renews the lease name for holder until ttl from now,
// and reports whether holder has it: false while another holder's lease
// has not expired.
func (s *Store) TakeLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := s.now().UTC()
	var got string
	err := s.pool.QueryRow(ctx, `INSERT INTO job_leases AS l (name, holder, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
		WHERE l.holder = EXCLUDED.holder OR l.expires_at <= $4
		RETURNING holder`, name, holder, now.Add(ttl), now).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, translate(fmt.Errorf("take lease %s: %w", name, err))
	}
	return true, nil
}

// ReleaseLease gives up holder's lease name, if it still has it.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM job_leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return translate(fmt.Errorf("release lease %s: %w", name, err))
	}
	return nil
}
