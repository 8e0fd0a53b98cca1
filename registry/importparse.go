package registry

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
)

// ImportFormat is the encoding of an import file.
type ImportFormat string

const (
	// ImportCSV is comma-separated values with a header row: id, then
	// optionally state, etag, config (a JSON object) and tags.<key> columns.
	ImportCSV ImportFormat = "csv"
	// ImportNDJSON is one JSON device object per line: id, and optionally
	// state, etag, tags (an object of strings) and config (an object). The
	// read-only fields of an exported device (scope, connection, reported,
	// enrollment, createdAt, updatedAt) are accepted and ignored, so that an
	// export can be imported again.
	ImportNDJSON ImportFormat = "ndjson"
)

// MaxImportLine bounds one line (one record) of an import file, so that a
// file without line breaks cannot make the server buffer it whole.
const MaxImportLine = 256 << 10

// ImportRecord is one record of an import file. A record that could not be
// read carries Err (and whatever of ID was readable) and is reported, never
// applied.
type ImportRecord struct {
	Row    int // line of the file where the record starts (1 is a CSV file's header)
	ID     string
	State  gatehouse.State   // empty: the record names none
	ETag   string            // empty: no etag check
	Tags   map[string]string // tags to set
	Untag  []string          // tags to remove (CSV: an empty tags.<key> cell)
	Config json.RawMessage   // nil: the record names none
	// ReplaceTags says Tags is the device's whole tag set (NDJSON "tags"),
	// rather than changes to it (CSV tags.<key> columns).
	ReplaceTags bool
	Err         error
}

// ImportReader reads the records of an import file, one at a time: the
// file is never held in memory.
type ImportReader struct {
	rowSource
}

type csvColumn struct {
	kind string // id, state, etag, config, tag
	tag  string
}

// deviceColumns are the columns of a device import file besides tags.<key>.
var deviceColumns = map[string]bool{"id": true, "state": true, "etag": true, "config": true}

const deviceColumnsHelp = "id, then state, etag, config or tags.<key>"

// NewImportReader reads the start of an import file (a CSV file's header).
// Its errors are about the whole file: nothing of it can be imported.
func NewImportReader(r io.Reader, format ImportFormat) (*ImportReader, error) {
	src, err := openRowSource(r, format, deviceColumns, deviceColumnsHelp)
	if err != nil {
		return nil, err
	}
	return &ImportReader{src}, nil
}

// Next returns the next record, or io.EOF after the last. Any other error
// means the file cannot be read further (the connection broke, a line is
// too long); the records before it stand.
func (ir *ImportReader) Next() (*ImportRecord, error) {
	if ir.format == ImportCSV {
		return ir.nextCSV()
	}
	return ir.nextNDJSON()
}

func (ir *ImportReader) nextCSV() (*ImportRecord, error) {
	fields, line, rowErr, err := ir.csvRow()
	if err != nil {
		return nil, err
	}
	rec := &ImportRecord{Row: line, Err: rowErr}
	if rowErr != nil {
		if len(fields) > 0 && ir.cols[0].kind == "id" {
			rec.ID = truncate(fields[0], 128)
		}
		return rec, nil
	}
	for i, f := range fields {
		c := ir.cols[i]
		switch c.kind {
		case "id":
			rec.ID = f
		case "state":
			rec.State = gatehouse.State(strings.TrimSpace(f))
		case "etag":
			rec.ETag = strings.Trim(strings.TrimSpace(f), `"`)
		case "config":
			if strings.TrimSpace(f) != "" {
				rec.Config = json.RawMessage(f) // copied: fields are reused
				rec.Config = append(json.RawMessage(nil), rec.Config...)
			}
		case "tag":
			if f == "" {
				rec.Untag = append(rec.Untag, c.tag)
			} else {
				if rec.Tags == nil {
					rec.Tags = make(map[string]string, ir.ncols)
				}
				rec.Tags[c.tag] = f
			}
		}
	}
	rec.ID = strings.Clone(rec.ID)
	return rec, nil
}

// ndjsonRecord is one NDJSON line.
type ndjsonRecord struct {
	ID     *string           `json:"id"`
	State  gatehouse.State   `json:"state"`
	ETag   string            `json:"etag"`
	Tags   map[string]string `json:"tags"`
	Config json.RawMessage   `json:"config"`

	// The read-only fields of an exported device, ignored.
	Scope      json.RawMessage `json:"scope"`
	Connection json.RawMessage `json:"connection"`
	Reported   json.RawMessage `json:"reported"`
	Enrollment json.RawMessage `json:"enrollment"`
	CreatedAt  json.RawMessage `json:"createdAt"`
	UpdatedAt  json.RawMessage `json:"updatedAt"`
}

func (ir *ImportReader) nextNDJSON() (*ImportRecord, error) {
	for {
		var nr ndjsonRecord
		line, rowErr, err := ir.ndjsonRow(&nr, "one device per line")
		if err != nil {
			return nil, err
		}
		rec := &ImportRecord{Row: line}
		if rowErr != nil {
			rec.Err = rowErr
			return rec, nil
		}
		if nr.ID == nil {
			rec.Err = gatehouse.Errorf(gatehouse.EInvalid, "the object has no id")
			return rec, nil
		}
		rec.ID, rec.State, rec.ETag = *nr.ID, nr.State, nr.ETag
		if nr.Tags != nil {
			rec.Tags, rec.ReplaceTags = nr.Tags, true
		}
		if len(nr.Config) > 0 && !bytes.Equal(nr.Config, []byte("null")) {
			rec.Config = nr.Config
		}
		return rec, nil
	}
}

// fileError describes a failure to read the file further.
func fileError(err error, where string) error {
	if ge, ok := errors.AsType[*gatehouse.Error](err); ok {
		return ge
	}
	if pe, ok := errors.AsType[*csv.ParseError](err); ok {
		return gatehouse.Errorf(gatehouse.EInvalid, "malformed CSV in %s: %s", where, pe.Err)
	}
	return fmt.Errorf("%w: %w", gatehouse.Errorf(gatehouse.EInvalid, "the file could not be read past %s", where), err)
}

// lineLimit passes a reader through, failing once a line grows past
// MaxImportLine, and notes whether the input has ended (and how).
type lineLimit struct {
	r             io.Reader
	run           int // bytes since the last newline
	eof           bool
	endsInNewline bool
	err           error
}

func (l *lineLimit) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	if n > 0 {
		if i := bytes.LastIndexByte(p[:n], '\n'); i >= 0 {
			l.run = n - i - 1
		} else {
			l.run += n
		}
		l.endsInNewline = p[n-1] == '\n'
		if l.run > MaxImportLine {
			l.err = gatehouse.Errorf(gatehouse.ETooLarge, "a line of the file is longer than %d bytes; one record per line", MaxImportLine)
			return n, l.err
		}
	}
	if err == io.EOF {
		l.eof = true
	} else if err != nil {
		l.err = err
	}
	return n, err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
