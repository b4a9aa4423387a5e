package postgres

// FoldIn exposes foldIn to the tests, which fold on a connection they hold.
var FoldIn = foldIn
