package postgres

import (
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// The column arrays of a Batch are sent as these types rather than as
// plain slices: pgx encodes a plain []string or []time.Time through an
// interface holding a copy of each element, one allocation per element
// (about ten per event). Each type here hands pgx a pointer into its
// slice instead, as an element type whose pgtype valuer method gives the
// value, so an array is encoded without allocating.
type (
	textColumn        []string
	timestamptzColumn []time.Time
	dateColumn        []time.Time

	textElem        string
	timestamptzElem time.Time
	dateElem        time.Time
)

// TextValue is the text of one element of a textColumn.
func (e *textElem) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(*e), Valid: true}, nil
}

// TimestamptzValue is the instant of one element of a timestamptzColumn.
func (e *timestamptzElem) TimestamptzValue() (pgtype.Timestamptz, error) {
	return pgtype.Timestamptz{Time: time.Time(*e), Valid: true}, nil
}

// DateValue is the date of one element of a dateColumn.
func (e *dateElem) DateValue() (pgtype.Date, error) {
	return pgtype.Date{Time: time.Time(*e), Valid: true}, nil
}

// dimensions is what pgtype.FlatArray gives for a one-dimensional slice.
func dimensions(n int, isNil bool) []pgtype.ArrayDimension {
	if isNil {
		return nil
	}
	return []pgtype.ArrayDimension{{Length: int32(n), LowerBound: 1}}
}

// Dimensions, Index and IndexType make each column a pgtype.ArrayGetter.

func (c textColumn) Dimensions() []pgtype.ArrayDimension { return dimensions(len(c), c == nil) }
func (c textColumn) Index(i int) any                     { return (*textElem)(&c[i]) }
func (c textColumn) IndexType() any                      { return (*textElem)(nil) }

func (c timestamptzColumn) Dimensions() []pgtype.ArrayDimension { return dimensions(len(c), c == nil) }
func (c timestamptzColumn) Index(i int) any                     { return (*timestamptzElem)(&c[i]) }
func (c timestamptzColumn) IndexType() any                      { return (*timestamptzElem)(nil) }

func (c dateColumn) Dimensions() []pgtype.ArrayDimension { return dimensions(len(c), c == nil) }
func (c dateColumn) Index(i int) any                     { return (*dateElem)(&c[i]) }
func (c dateColumn) IndexType() any                      { return (*dateElem)(nil) }
