// Package reports renders reports and rosters for finance: JSON verbatim,
// CSV as RFC 4180 with a header row, streamed row by row.
package reports

import (
	"encoding/csv"
	"fmt"
	"io"
)

// CSVWriter writes RFC 4180 CSV (quoting as needed, UTF-8, CRLF line ends)
// and neutralizes cells a spreadsheet would run as a formula.
type CSVWriter struct {
	w   *csv.Writer
	row []string
}

// NewCSVWriter returns a CSVWriter on w and writes the header row.
func NewCSVWriter(w io.Writer, header ...string) (*CSVWriter, error) {
	cw := &CSVWriter{w: csv.NewWriter(w)}
	cw.w.UseCRLF = true
	if err := cw.Write(header...); err != nil {
		return nil, err
	}
	return cw, nil
}

// Write writes one row.
func (c *CSVWriter) Write(cells ...string) error {
	c.row = c.row[:0]
	for _, s := range cells {
		c.row = append(c.row, SafeCell(s))
	}
	if err := c.w.Write(c.row); err != nil {
		return fmt.Errorf("write csv row: %w", err)
	}
	return nil
}

// Flush writes buffered rows to the underlying writer; call it at the end,
// and from time to time while streaming long lists.
func (c *CSVWriter) Flush() error {
	c.w.Flush()
	if err := c.w.Error(); err != nil {
		return fmt.Errorf("flush csv: %w", err)
	}
	return nil
}

// SafeCell prefixes with ' a cell that begins with =, +, -, @, a tab or a
// carriage return, so that spreadsheets show it as text instead of running
// it as a formula (CSV injection). JSON output is never altered.
func SafeCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
