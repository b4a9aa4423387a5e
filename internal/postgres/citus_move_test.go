package postgres_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/pgtest"
	"github.com/tallyhq/tally/internal/postgres"
	"github.com/tallyhq/tally/internal/usage"
)

// moveTransferMode is how TestShardMoveWhileIngesting moves the shards:
// by logical replication, refusing to fall back to blocking writes, so
// that the test fails if a table of the group lacks a replica identity or
// a node lacks logical WAL instead of quietly testing a blocking move.
const moveTransferMode = "force_logical"

// TestShardMoveWhileIngesting: on Citus, an operator moves the shard group
// holding an account to the other worker while the account ingests and
// its events are folded, and nothing is lost or counted twice: every
// acknowledged event is in the rollup exactly once, the provisional report
// counts the distinct users of the stored events, the account's shards are
// all on the target, its statements are routed there, and bodies were
// acknowledged while the move ran (writes are not held for the whole
// copy, as they are with shard_transfer_mode 'block_writes').
func TestShardMoveWhileIngesting(t *testing.T) {
	if pgtest.Engine() != pgtest.Citus {
		t.Skip("shard moves are Citus's; this runs in the Citus run of the suite")
	}
	s, pool, ac := newStore(t)
	ctx := t.Context()

	// A few thousand events already there, some folded and some pending,
	// so that the move copies every kind of row of the group.
	sent := map[string]usage.Event{} // every id acknowledged, with its event
	body := func(b, n int) []usage.Event {
		es := make([]usage.Event, 0, n)
		for i := range n {
			k := b*n + i
			// 800 users over October and November: bodies keep touching
			// rollup rows the move has already copied.
			at := time.Date(2026, 10, 1+k%61, 0, 0, 0, 0, time.UTC).Add(time.Duration(k%86400) * time.Second)
			es = append(es, usage.Event{ID: fmt.Sprintf("b%d-%d", b, i), Activity: usage.Join, Source: usage.SDK,
				ServiceSID: "IS1", Identity: fmt.Sprintf("user-%d", k*7%800), OccurredAt: at})
		}
		return es
	}
	const before, bodySize = 20, 250
	for b := range before {
		es := body(b, bodySize)
		record(t, s, ac, events(es...))
		for _, e := range es {
			sent[e.ID] = e
		}
		if b == before/2 {
			fold(t, s)
		}
	}

	shard := count(t, pool, `SELECT get_shard_id_for_distribution_column('events', $1::text)`, ac)
	var srcHost, dstHost string
	var srcPort, dstPort int
	if err := pool.QueryRow(ctx, `SELECT nodename, nodeport FROM pg_dist_shard_placement WHERE shardid = $1`, shard).
		Scan(&srcHost, &srcPort); err != nil {
		t.Fatalf("placement of shard %d: %v", shard, err)
	}
	// The other worker: group 0 is the coordinator, which holds no shards.
	if err := pool.QueryRow(ctx, `SELECT nodename, nodeport FROM pg_dist_node
		WHERE groupid > 0 AND noderole = 'primary' AND isactive AND (nodename, nodeport) <> ($1, $2)`, srcHost, srcPort).
		Scan(&dstHost, &dstPort); err != nil {
		t.Fatalf("the other worker: %v", err)
	}

	// One client ingests bodies of new events, each resending ten events
	// of the body before (a client's retry), and a reader's fold runs
	// beside it, so that the move carries inserts into every table of
	// the body and the fold's updates and deletes.
	type timing struct{ begin, end time.Time }
	var (
		mu       sync.Mutex
		bodies   []timing
		accepted int64
		moving   = make(chan struct{})
	)
	var wg sync.WaitGroup
	// On a failure, the goroutines stop before the test's database goes.
	defer wg.Wait()
	ingestCtx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 2)
	wg.Go(func() {
		prev := body(before-1, bodySize)
		for b := before; ; b++ {
			// Bodies stop only after the move ended and a few more went
			// through: those are written to the target.
			select {
			case <-ingestCtx.Done():
				return
			default:
			}
			es := append(body(b, bodySize), prev[:10]...)
			begin := time.Now()
			res, err := s.RecordEvents(context.WithoutCancel(ingestCtx), ac, events(es...))
			end := time.Now()
			if err != nil {
				errc <- fmt.Errorf("body %d: %w", b, err)
				return
			}
			mu.Lock()
			bodies = append(bodies, timing{begin, end})
			accepted += res.Accepted
			for _, e := range es {
				sent[e.ID] = e
			}
			mu.Unlock()
			if b == before+2 {
				close(moving) // the move starts with ingest under way
			}
			prev = es
		}
	})
	wg.Go(func() {
		for ingestCtx.Err() == nil {
			if _, err := s.FoldRollup(context.WithoutCancel(ingestCtx), ac); err != nil {
				errc <- fmt.Errorf("fold: %w", err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	select {
	case <-moving:
	case err := <-errc:
		t.Fatal(err)
	}
	rowsBefore := count(t, pool, accountRows, ac)
	moveBegin := time.Now()
	_, moveErr := pool.Exec(ctx, `SELECT citus_move_shard_placement($1, $2, $3, $4, $5, shard_transfer_mode => $6::citus.shard_transfer_mode)`,
		shard, srcHost, srcPort, dstHost, dstPort, moveTransferMode)
	moveEnd := time.Now()
	// A few bodies after the move, then stop.
	for deadline := time.Now().Add(30 * time.Second); ; {
		mu.Lock()
		after := 0
		for _, b := range bodies {
			if b.begin.After(moveEnd) {
				after++
			}
		}
		mu.Unlock()
		if after >= 3 || time.Now().After(deadline) || len(errc) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if moveErr != nil {
		t.Fatalf("move shard %d from %s:%d to %s:%d (%s): %v", shard, srcHost, srcPort, dstHost, dstPort, moveTransferMode, moveErr)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Bodies begun and acknowledged while the move ran, and some in its
	// second half: a move that holds writes for its copy (block_writes)
	// lets through at most a body that slipped in before its locks, at
	// its start, while a logical move holds them only for its switch
	// at the end. No duration is asserted: this machine's load varies.
	mid := moveBegin.Add(moveEnd.Sub(moveBegin) / 2)
	during, late, overlapping, longest := 0, 0, 0, time.Duration(0)
	for _, b := range bodies {
		if b.end.After(moveBegin) && b.begin.Before(moveEnd) {
			overlapping++
			longest = max(longest, b.end.Sub(b.begin))
		}
		if b.begin.After(moveBegin) && b.end.Before(moveEnd) {
			during++
			if b.begin.After(mid) {
				late++
			}
		}
	}
	t.Logf("moved shard group of %d (%d rows of the account when it began, %d when it ended) from %s to %s in %v, %s; "+
		"%d bodies of %d events begun and acknowledged during the move (%d in its second half), %d overlapping it, the longest %v",
		shard, rowsBefore, count(t, pool, accountRows, ac), srcHost, dstHost, moveEnd.Sub(moveBegin).Round(time.Millisecond), moveTransferMode,
		during, bodySize+10, late, overlapping, longest.Round(time.Millisecond))
	if late == 0 {
		t.Errorf("no body was acknowledged in the second half of the move (%d in all during it, %v): writes waited for the move",
			during, moveEnd.Sub(moveBegin).Round(time.Millisecond))
	}

	// Every shard of the account's group is on the target now.
	if n := count(t, pool, `SELECT count(*) FROM pg_dist_partition p
		CROSS JOIN LATERAL get_shard_id_for_distribution_column(p.logicalrelid, $1::text) s(shardid)
		JOIN pg_dist_shard_placement pl ON pl.shardid = s.shardid
		WHERE p.partmethod = 'h' AND (pl.nodename, pl.nodeport) <> ($2, $3)`, ac, dstHost, dstPort); n != 0 {
		t.Errorf("%d shards of the account's group are not on %s after the move", n, dstHost)
	}
	if n := count(t, pool, `SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h'`); n < 2 {
		t.Fatalf("%d distributed tables", n)
	}

	// The move's publications, slots and subscriptions are gone: a slot
	// left behind would keep the source's WAL for ever.
	if n := count(t, pool, `SELECT coalesce(sum(result::int), 0) FROM run_command_on_workers($$
		SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database())
		     + (SELECT count(*) FROM pg_publication)
		     + (SELECT count(*) FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()))$$)`); n != 0 {
		t.Errorf("%d replication slots, publications or subscriptions left on the workers after the move", n)
	}

	// Exactly once: the stored events are the acknowledged ones, each
	// accepted once across the move, and the fold counted each once.
	fold(t, s)
	if n := count(t, pool, `SELECT count(*) FROM events WHERE account_sid = $1`, ac); n != int64(len(sent)) {
		t.Errorf("%d events stored, %d acknowledged", n, len(sent))
	}
	if want := int64(len(sent) - before*bodySize); accepted != want {
		t.Errorf("bodies during the test accepted %d new events, want %d: a resent event was accepted again, or one was lost", accepted, want)
	}
	if n := count(t, pool, `SELECT coalesce(sum(events), 0) FROM month_users WHERE account_sid = $1`, ac); n != int64(len(sent)) {
		t.Errorf("the rollup counts %d events, %d were acknowledged", n, len(sent))
	}
	if n := count(t, pool, `SELECT count(*) FROM rollup_pending WHERE account_sid = $1`, ac); n != 0 {
		t.Errorf("%d events still pending after a fold", n)
	}
	users := map[string]map[string]bool{}
	for _, e := range sent {
		m := usage.MonthOf(e.OccurredAt).String()
		if users[m] == nil {
			users[m] = map[string]bool{}
		}
		users[m][e.Identity] = true
	}
	for m, ids := range users {
		month, err := usage.ParseMonth(m)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.ProvisionalReport(ctx, ac, month)
		if err != nil {
			t.Fatalf("report of %s: %v", m, err)
		}
		distinct := count(t, pool, `SELECT count(DISTINCT (service_sid, identity)) FROM events
			WHERE account_sid = $1 AND occurred_at >= $2 AND occurred_at < $3`, ac, month.Start(), month.End())
		if r.ActiveUsers != distinct || distinct != int64(len(ids)) {
			t.Errorf("%s: the report counts %d active users, the events %d distinct, the bodies acknowledged %d",
				m, r.ActiveUsers, distinct, len(ids))
		}
	}

	// Reads and writes of the account still run whole on one worker, the
	// target.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	node := regexp.MustCompile(`Node: host=(\S+) port=(\d+)`)
	for name, sql := range postgres.AccountStatements() {
		plan := explain(t, tx, sql.SQL, append([]any{ac}, sql.Args...)...)
		tasks := regexp.MustCompile(`Task Count: (\d+)`).FindAllStringSubmatch(plan, -1)
		if len(tasks) != 1 || tasks[0][1] != "1" || strings.Contains(plan, "Distributed Subplan") ||
			strings.Contains(plan, "pull to coordinator") {
			t.Errorf("after the move, %s is not routed to one worker:\n%s", name, plan)
			continue
		}
		if m := node.FindStringSubmatch(plan); m == nil || m[1] != dstHost || m[2] != fmt.Sprint(dstPort) {
			t.Errorf("after the move, %s runs on %v, not on %s:\n%s", name, m, dstHost, plan)
		}
	}
}

// accountRows counts an account's rows in the tables that ingest and
// folds write: what a move of its shard group copies.
const accountRows = `SELECT (SELECT count(*) FROM events WHERE account_sid = $1)
	+ (SELECT count(*) FROM rollup_pending WHERE account_sid = $1)
	+ (SELECT count(*) FROM month_users WHERE account_sid = $1)
	+ (SELECT count(*) FROM users WHERE account_sid = $1)
	+ (SELECT count(*) FROM account_months WHERE account_sid = $1)`
