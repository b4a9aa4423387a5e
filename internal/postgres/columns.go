package postgres

import (
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// column is a column array of a usage.EventList (arrayInput), sent in
// place of a plain slice: pgx encodes a plain []string or []time.Time
// through an interface holding a copy of each element, one allocation per
// element (about ten per event). A column hands pgx a pointer into itself instead, to an element
// type whose pgtype valuer method gives the value, so an array is encoded
// without allocating. It is a pgtype.ArrayGetter.
type column[E any] []E

// The element types of the columns, each converted from its Go value.
type (
	textElem        string
	timestamptzElem time.Time
	dateElem        time.Time
)

// Dimensions is what pgtype.FlatArray gives for a one-dimensional slice.
func (c column[E]) Dimensions() []pgtype.ArrayDimension {
	if c == nil {
		return nil
	}
	return []pgtype.ArrayDimension{{Length: int32(len(c)), LowerBound: 1}}
}

// Index is a pointer to element i: no copy of it escapes to the heap.
func (c column[E]) Index(i int) any { return &c[i] }

// IndexType is the type Index returns.
func (c column[E]) IndexType() any { return (*E)(nil) }

// TextValue is the text of one element of a text[] column.
func (e *textElem) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(*e), Valid: true}, nil
}

// TimestamptzValue is the instant of one element of a timestamptz[] column.
func (e *timestamptzElem) TimestamptzValue() (pgtype.Timestamptz, error) {
	return pgtype.Timestamptz{Time: time.Time(*e), Valid: true}, nil
}

// DateValue is the date of one element of a date[] column.
func (e *dateElem) DateValue() (pgtype.Date, error) {
	return pgtype.Date{Time: time.Time(*e), Valid: true}, nil
}
