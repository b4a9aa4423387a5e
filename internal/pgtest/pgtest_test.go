package pgtest

import (
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestNewDBIsolated checks that two test databases are migrated and do not
// share rows.
func TestNewDBIsolated(t *testing.T) {
	a, urlA := NewDB(t)
	b, urlB := NewDB(t)
	if urlA == urlB {
		t.Fatal("two tests share a database")
	}
	const sid = "AC0123456789abcdef0123456789abcdef"
	if _, err := a.Exec(t.Context(), `INSERT INTO accounts (account_sid, name) VALUES ($1, 'a')`, sid); err != nil {
		t.Fatalf("insert into a migrated database: %v", err)
	}
	var n int
	if err := b.QueryRow(t.Context(), `SELECT count(*) FROM accounts`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the other database has %d accounts (%v), want 0", n, err)
	}
	if err := a.QueryRow(t.Context(), `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&n); err != nil || n < 9 {
		t.Fatalf("%d migrations applied (%v)", n, err)
	}
}
