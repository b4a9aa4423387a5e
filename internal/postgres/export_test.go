package postgres

// FoldIn exposes foldIn to the tests, which fold on a connection they hold.
var FoldIn = foldIn

// FoldSlot exposes foldSlot to the tests, which switch slots while writes
// are open.
var FoldSlot = (*Store).foldSlot
