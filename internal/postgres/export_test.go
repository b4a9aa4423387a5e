package postgres

// SetFoldSettings are the settings a fold runs with, for tests that
// EXPLAIN its statements.
var SetFoldSettings = setFoldSettings

// The fold's statements, for tests that EXPLAIN them.
var (
	FoldMonthUsers = foldMonthUsers
	FoldUsers      = foldUsers
	FoldDelete     = foldDelete
)

// AfterMonthLock makes FinalizeMonth call fn while it holds its month's
// lock, for tests that ingest meanwhile.
func (s *Store) AfterMonthLock(fn func()) { s.afterMonthLock = fn }
