package registry

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
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

// openRowSource starts reading an import file of format: for CSV, it reads
// the header, whose columns must be among columns (and include id) or be
// tags.<key>; help lists them for messages. Its errors are about the whole
// file: nothing of it can be imported.
func openRowSource(r io.Reader, format ImportFormat, columns map[string]bool, help string) (rowSource, error) {
	ll := &lineLimit{r: r}
	s := rowSource{format: format, lines: ll}
	switch format {
	case ImportCSV:
		s.csv = csv.NewReader(ll)
		s.csv.FieldsPerRecord = -1
		s.csv.ReuseRecord = true
		header, err := s.csv.Read()
		if err == io.EOF {
			return s, gatehouse.Errorf(gatehouse.EInvalid, "the file is empty; its first line must be a header naming the columns: %s", help)
		}
		if err != nil {
			return s, fileError(err, "the header")
		}
		if err := s.parseHeader(header, columns, help); err != nil {
			return s, err
		}
	case ImportNDJSON:
		s.sc = bufio.NewScanner(ll)
		s.sc.Buffer(make([]byte, 64<<10), MaxImportLine+1)
	default:
		return s, gatehouse.Errorf(gatehouse.EInvalid, "unknown import format %q; use csv or ndjson", truncate(string(format), 32))
	}
	return s, nil
}

func (s *rowSource) parseHeader(header []string, columns map[string]bool, help string) error {
	seen := map[string]bool{}
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\uFEFF") // a byte order mark, as spreadsheets write
		}
		h = strings.TrimSpace(h)
		if !utf8.ValidString(h) {
			return gatehouse.Errorf(gatehouse.EInvalid, "the header is not valid UTF-8; save the file as UTF-8")
		}
		if seen[h] {
			return gatehouse.Errorf(gatehouse.EInvalid, "column %q appears twice in the header", truncate(h, 64))
		}
		seen[h] = true
		var c csvColumn
		switch {
		case columns[h]:
			c.kind = h
		case strings.HasPrefix(h, "tags."):
			c.kind, c.tag = "tag", strings.TrimPrefix(h, "tags.")
			if err := gatehouse.ValidateTagKey(c.tag); err != nil {
				return gatehouse.Errorf(gatehouse.EInvalid, "column %q: %s", truncate(h, 64), gatehouse.ErrorMessage(err))
			}
		default:
			return gatehouse.Errorf(gatehouse.EInvalid, "unknown column %q in the header; the columns are %s", truncate(h, 64), help)
		}
		s.cols = append(s.cols, c)
	}
	if !seen["id"] {
		return gatehouse.Errorf(gatehouse.EInvalid, "the header has no id column; the first line must name the columns: %s", help)
	}
	s.ncols = len(header)
	return nil
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
