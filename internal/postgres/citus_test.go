package postgres_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
)

// undistributedTables counts the tables of tally's schema that Citus does
// not know: every table must be distributed or a reference table.
const undistributedTables = `SELECT count(*) FROM pg_tables t
WHERE t.schemaname = 'public' AND t.tablename <> 'goose_db_version'
  AND NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = format('%I', t.tablename)::regclass)`

// TestEveryTableIsDistributedByAccount: on Citus, migrations leave every
// table holding per-account data hash-distributed by account_sid, all in
// one colocation group, and the global ones (accounts, keys) as reference
// tables.
func TestEveryTableIsDistributedByAccount(t *testing.T) {
	if pgtest.Engine() != pgtest.Citus {
		t.Skip("on PostgreSQL without Citus nothing is distributed; this runs in the Citus run of the suite")
	}
	_, pool, _ := newStore(t)
	if n := count(t, pool, undistributedTables); n != 0 {
		t.Fatalf("%d tables are neither distributed nor reference tables", n)
	}
	// Shards move online by logical replication, which needs each table's
	// replica identity: a primary key.
	if n := count(t, pool, `SELECT count(*) FROM pg_dist_partition p WHERE NOT EXISTS (
		SELECT 1 FROM pg_index i WHERE i.indrelid = p.logicalrelid AND i.indisprimary)`); n != 0 {
		t.Fatalf("%d distributed tables have no primary key, so their shards cannot move online", n)
	}
	rows, err := pool.Query(t.Context(), `SELECT logicalrelid::text, partmethod, coalesce(column_to_column_name(logicalrelid, partkey), ''), repmodel, colocationid
		FROM pg_dist_partition ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	groups := map[int]bool{}
	for rows.Next() {
		var table, method, column, repmodel string
		var group int
		if err := rows.Scan(&table, &method, &column, &repmodel, &group); err != nil {
			t.Fatal(err)
		}
		switch table {
		case "accounts", "api_keys", "console_sessions", "job_leases":
			if method != "n" || repmodel != "t" {
				t.Errorf("%s: partmethod %q, want a reference table", table, method)
			}
			continue
		}
		if method != "h" || column != "account_sid" {
			t.Errorf("%s: partmethod %q by %q, want hash by account_sid", table, method, column)
		}
		groups[group] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 {
		t.Errorf("the distributed tables are in %d colocation groups, want 1", len(groups))
	}
}

// TestAccountStatementsAreRouted: on Citus, each statement about one
// account runs whole on the worker holding it: one task, and no
// subplan pulled through the coordinator.
func TestAccountStatementsAreRouted(t *testing.T) {
	if pgtest.Engine() != pgtest.Citus {
		t.Skip("routing is Citus's; this runs in the Citus run of the suite")
	}
	_, pool, ac := newStore(t)
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	for name, sql := range postgres.AccountStatements() {
		plan := explain(t, tx, sql.SQL, append([]any{ac}, sql.Args...)...)
		tasks := regexp.MustCompile(`Task Count: (\d+)`).FindAllStringSubmatch(plan, -1)
		if len(tasks) != 1 || tasks[0][1] != "1" || strings.Contains(plan, "Distributed Subplan") ||
			strings.Contains(plan, "pull to coordinator") {
			t.Errorf("%s is not routed to one worker:\n%s", name, plan)
		}
	}
}
