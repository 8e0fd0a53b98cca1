package httpapi

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

// TestExportDevices streams a scope's devices as NDJSON and CSV (the
// columns an import reads), filtered like a listing.
func TestExportDevices(t *testing.T) {
	e := newEnv(t, nil)
	e.mustDevice("d-1", map[string]string{"site": "north", "model": "x1"})
	e.mustDevice("d-2", map[string]string{"site": "south"})
	e.mustDevice("d-3", nil)

	r := e.do("GET", "/v1/scopes/default/exports/devices", e.admin, nil).want(t, 200)
	if ct := r.header.Get("Content-Type"); ct != mediaNDJSON {
		t.Errorf("NDJSON Content-Type %q", ct)
	}
	var ids []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(r.body)), "\n") {
		var d gatehouse.Device
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("NDJSON line %q: %v", line, err)
		}
		ids = append(ids, d.ID)
	}
	if !slices.Equal(ids, []string{"d-1", "d-2", "d-3"}) {
		t.Errorf("NDJSON export ids %q", ids)
	}

	rows := func(query string) [][]string {
		t.Helper()
		r := e.do("GET", "/v1/scopes/default/exports/devices"+query, e.admin, nil).want(t, 200)
		if ct := r.header.Get("Content-Type"); ct != mediaCSV {
			t.Errorf("CSV Content-Type %q", ct)
		}
		recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
		if err != nil {
			t.Fatalf("CSV export%s: %v\n%s", query, err, r.body)
		}
		return recs
	}
	// Every tag key among the devices becomes a column, sorted.
	got := rows("?format=csv")
	if len(got) != 4 || !slices.Equal(got[0], []string{"id", "state", "etag", "config", "tags.model", "tags.site"}) {
		t.Fatalf("CSV export: %q", got)
	}
	if got[1][0] != "d-1" || got[1][4] != "x1" || got[1][5] != "north" || got[3][0] != "d-3" || got[3][5] != "" {
		t.Errorf("CSV rows %q", got[1:])
	}
	// Chosen tag columns and a listing's filter.
	got = rows("?format=csv&tagKeys=site&tag=site%3Dsouth")
	if len(got) != 2 || !slices.Equal(got[0], []string{"id", "state", "etag", "config", "tags.site"}) || got[1][0] != "d-2" || got[1][4] != "south" {
		t.Errorf("filtered CSV export: %q", got)
	}
	// Nothing selected: a header and no rows.
	if got = rows("?format=csv&tagKeys=site&tag=site%3Dwest"); len(got) != 1 {
		t.Errorf("empty CSV export: %q", got)
	}

	e.do("GET", "/v1/scopes/default/exports/devices?cursor=abc", e.admin, nil).problem(t, 400, gatehouse.EInvalidCursor)
	for _, q := range []string{"?format=xml", "?limit=10", "?format=csv&tagKeys=bad%20key", "?format=csv&format=ndjson"} {
		e.do("GET", "/v1/scopes/default/exports/devices"+q, e.admin, nil).problem(t, 400, gatehouse.EInvalid)
	}
}
