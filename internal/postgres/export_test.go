package postgres

import (
	"maps"
	"strings"
	"time"

	"github.com/tallyhq/tally/internal/usage"
)

// SetFoldSettings are the settings a fold runs with, for tests that
// EXPLAIN its statements.
var SetFoldSettings = setFoldSettings

// The fold's statements, for tests that EXPLAIN them.
var (
	FoldMonthUsers = foldMonthUsers
	FoldUsers      = foldUsers
	FoldDelete     = foldDelete
)

// The provisional roster's month rows and their settings, for the test
// that EXPLAINs them.
var (
	ProvisionalRoster = provisionalRoster
	RosterSettings    = rosterSettings
)

// AfterMonthLock makes HoldMonth call fn while it holds its month's
// lock, after its fold, for tests that ingest meanwhile.
func (s *Store) AfterMonthLock(fn func()) { s.afterMonthLock = fn }

// ProbeBacklogEveryBody makes every body probe its account's pending
// events, for tests that count them after each body.
func (s *Store) ProbeBacklogEveryBody() { s.backlogEvery = 0 }

// Statement is a statement about one account ($1) and its other arguments.
type Statement struct {
	SQL  string
	Args []any
}

// AccountStatements are the statements about one account that reads,
// folds and bodies run, for the test that checks Citus routes each to one
// worker.
func AccountStatements() map[string]Statement {
	month, service := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), "IS1"
	months := []time.Time{month}
	out := map[string]Statement{
		"fold month users":   {foldMonthUsers, []any{0, foldParts}},
		"fold users":         {foldUsers, []any{0, foldParts}},
		"fold delete":        {foldDelete, []any{0, foldParts}},
		"fold lookalikes":    {foldLookalikeSelves, []any{0, foldParts}},
		"fold part pending":  {foldPartPending, []any{0, foldParts}},
		"pending":            {foldPending, nil},
		"backlog probe":      {backlogProbe, []any{int64(DefaultMaxPending + 1)}},
		"lock months":        {lockMonths, []any{months}},
		"mark revisions":     {markRevisions, []any{months}},
		"month figures":      {monthFigures, []any{month, usage.RESTOnlyActivities}},
		"month new users":    {monthNewUsers, []any{month, nil}},
		"month identities":   {monthIdentities, []any{month}},
		"provisional roster": {provisionalRoster, []any{month, "", "", 100}},
		"identity stats": {identityStats, []any{month, service, usage.RESTOnlyActivities,
			int16(1), int16(2), int16(4), int16(2)}},
		"lookalike count":              {lookalikeCount, []any{month, service}},
		"billed users":                 {billedUsers, []any{month}},
		"month rate card":              {monthRateCard, []any{month}},
		"lookalike groups":             {lookalikeGroups, []any{month, service, int64(2), service, "alice", 100}},
		"month new users of a service": {monthNewUsers, []any{month, service}},
		"churned":                      {churned, []any{month.AddDate(0, -1, 0), month, service}},
		"top identities":               {topIdentities, []any{month, service}},
	}
	for flag, stmt := range listIdentitiesFlagged {
		out["identities flag "+flag] = Statement{stmt, []any{month, service, "", "", "al", "al%", 100}}
	}
	// A read with pending events runs its statements behind liveRollup.
	live := map[string]Statement{}
	for name, stmt := range out {
		if !strings.HasPrefix(name, "fold") && name != "lock months" && name != "mark revisions" {
			live["live "+name] = Statement{liveRollup(stmt.SQL), stmt.Args}
		}
	}
	// Some merge pending events themselves.
	live["live month new users"] = Statement{liveNewUsers, []any{month, nil}}
	live["live month new users of a service"] = Statement{liveNewUsers, []any{month, service}}
	live["live provisional roster"] = Statement{provisionalRoster, []any{month, "", "", 100}}
	live["live month identities"] = Statement{liveMonthIdentities, []any{month}}
	live["live top identities"] = Statement{liveTopIdentities, []any{month, service}}
	live["live lookalike count"] = Statement{liveLookalikeCount, []any{month, service}}
	live["live identity stats"] = Statement{liveIdentityStats, out["identity stats"].Args}
	live["live month figures"] = Statement{liveMonthFigures, out["month figures"].Args}
	live["pending roster"] = Statement{pendingRoster, []any{month, "", "", 100}}
	maps.Copy(out, live)
	return out
}

// OnPendingVacuum makes the folds' deletions of after pending events wake
// the vacuum of rollup_pending, and fn run after each vacuum.
func (s *Store) OnPendingVacuum(after int64, fn func(took time.Duration, err error)) {
	s.vacuumAfter, s.afterVacuum = after, fn
}

// NoteFolded counts n pending events as deleted by a fold, as a fold does.
func (s *Store) NoteFolded(n int64) { s.noteFolded(n) }

// ErrMayNotVacuum is what OnPendingVacuum's fn gets when tally's role may
// not vacuum rollup_pending.
var ErrMayNotVacuum = errMayNotVacuum
