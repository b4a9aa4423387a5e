package postgres

// FoldIn exposes foldIn to the tests, which fold on a connection they hold.
var FoldIn = foldIn

// FoldSlot exposes foldSlot to the tests, which switch slots while writes
// are open.
var FoldSlot = (*Store).foldSlot

// The fold's statements (filled in by init, hence pointers) and the
// settings they run with, for tests that EXPLAIN them.
var (
	FoldDeleting    = &foldDeleting
	FoldRange       = &foldRange
	SetFoldSettings = setFoldSettings
)
