package registry_test

import (
	"bytes"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/gatehouse-iot/gatehouse/registry"
)

// FuzzImportReader feeds the device import parser arbitrary files, as CSV
// and as NDJSON: it must never panic or loop, must number rows forward,
// must refuse only with a client error code, and every record it accepts
// carries a UTF-8 ID and tags.
func FuzzImportReader(f *testing.F) {
	for _, s := range []string{
		"id,state,etag,config,tags.site\nd-1,active,,\"{\"\"a\"\":1}\",north\nd-2,,,,\n",
		"id,tags.site\nd-1,\"a\"\"b\"\nd-2,\"open",
		"id,state\nd-1\nd-2,active,extra\n\xff,active\n",
		"\uFEFFid,unknown\nd-1,x\n",
		`{"id":"d-1","tags":{"a":"b"},"config":{"x":1}}` + "\n\n{\"id\":1}\n{\"state\":\"active\"}\n{\"id\":\"d-2\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		for _, format := range []registry.ImportFormat{registry.ImportCSV, registry.ImportNDJSON} {
			rd, err := registry.NewImportReader(bytes.NewReader(file), format)
			if err != nil {
				checkRefusal(t, err, "")
				continue
			}
			last := 0
			for n := 0; ; n++ {
				if n > len(file)+2 {
					t.Fatalf("%s: more records than bytes", format)
				}
				rec, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					checkRefusal(t, err, "")
					break
				}
				if rec.Row <= last {
					t.Fatalf("%s: row %d after row %d", format, rec.Row, last)
				}
				last = rec.Row
				if rec.Err != nil {
					checkRefusal(t, rec.Err, "")
					continue
				}
				if !utf8.ValidString(rec.ID) {
					t.Fatalf("%s: row %d accepted an ID that is not UTF-8", format, rec.Row)
				}
				for k, v := range rec.Tags {
					if !utf8.ValidString(k) || !utf8.ValidString(v) {
						t.Fatalf("%s: row %d accepted a tag that is not UTF-8", format, rec.Row)
					}
				}
			}
		}
	})
}
