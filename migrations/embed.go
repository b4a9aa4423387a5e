// Package migrations holds tally's goose SQL migrations, embedded so that the
// one binary can migrate any database it is pointed at.
package migrations

import "embed"

// FS holds the numbered goose SQL files.
//
//go:embed *.sql
var FS embed.FS
