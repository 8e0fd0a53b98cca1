package registry

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/gatehouse-iot/gatehouse"
)

// rowSource reads an import file a row at a time, whatever kind of record
// it holds: CSV records checked against the header's column count, or
// NDJSON lines. ImportReader and EnrollmentReader embed it and decode the
// rows into their records.
type rowSource struct {
	format ImportFormat
	lines  *lineLimit

	// CSV
	csv    *csv.Reader
	cols   []csvColumn
	ncols  int
	csvEOF bool

	// NDJSON
	sc   *bufio.Scanner
	line int
}

// csvRow reads the next CSV record and the line it starts on. A problem
// with that row alone (malformed CSV, a wrong number of fields, a field
// that is not UTF-8) is rowErr, and reading goes on with the next row;
// fields then holds what could be read, if anything. err means the file
// cannot be read further: io.EOF after the last row, or why.
func (s *rowSource) csvRow() (fields []string, line int, rowErr, err error) {
	if s.csvEOF {
		return nil, 0, nil, io.EOF
	}
	fields, err = s.csv.Read()
	if err == io.EOF {
		return nil, 0, nil, io.EOF
	}
	if pe, ok := errors.AsType[*csv.ParseError](err); ok && s.lines.err == nil {
		// A malformed record: report it and go on with the next line. A
		// quote left open runs to the end of the file.
		if errors.Is(pe.Err, csv.ErrQuote) && s.lines.eof {
			s.csvEOF = true
			return nil, pe.StartLine, gatehouse.Errorf(gatehouse.EInvalid, "the file ends inside a quoted field that starts on this line; it may have been cut off"), nil
		}
		return nil, pe.StartLine, gatehouse.Errorf(gatehouse.EInvalid, "malformed CSV: %s; quote fields that hold commas, quotes or line breaks, and double quotes inside them", pe.Err), nil
	}
	if err != nil {
		return nil, 0, nil, fileError(err, fmt.Sprintf("byte %d", s.csv.InputOffset()))
	}
	// Only after a record was read: FieldPos panics after an error.
	line, _ = s.csv.FieldPos(0)
	if len(fields) != s.ncols {
		return fields, line, gatehouse.Errorf(gatehouse.EInvalid, "the row has %d fields; the header has %d columns", len(fields), s.ncols), nil
	}
	for i, f := range fields {
		if !utf8.ValidString(f) {
			return fields[:i], line, gatehouse.Errorf(gatehouse.EInvalid, "the row is not valid UTF-8 (column %d); save the file as UTF-8", i+1), nil
		}
	}
	return fields, line, nil, nil
}

// ndjsonRow reads the next non-blank NDJSON line and decodes it strictly
// into v. A problem with that line alone (not UTF-8, not the JSON object v
// wants) is rowErr; err means the file cannot be read further: io.EOF after
// the last line, or why. what names a line's object in messages ("one
// device per line").
func (s *rowSource) ndjsonRow(v any, what string) (line int, rowErr, err error) {
	for s.sc.Scan() {
		s.line++
		b := bytes.TrimSpace(s.sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if !utf8.Valid(b) {
			return s.line, gatehouse.Errorf(gatehouse.EInvalid, "the line is not valid UTF-8; save the file as UTF-8"), nil
		}
		if err := gatehouse.DecodeStrict(b, v); err != nil {
			if s.lines.eof && !s.lines.endsInNewline && b[len(b)-1] != '}' {
				err = gatehouse.Errorf(gatehouse.EInvalidJSON, "the last line is not a whole JSON object; the file may have been cut off")
			}
			return s.line, err, nil
		}
		return s.line, nil, nil
	}
	if err := s.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return 0, nil, gatehouse.Errorf(gatehouse.ETooLarge, "line %d is longer than %d bytes; %s", s.line+1, MaxImportLine, what)
		}
		return 0, nil, fileError(err, fmt.Sprintf("line %d", s.line+1))
	}
	return 0, nil, io.EOF
}
