package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// TestEnrollmentImportExport drives the enrollment import (kind=enrollments
// on the import route) and export over HTTP: results stream per row, then a
// summary; the exports, NDJSON and CSV, hold no key or token.
func TestEnrollmentImportExport(t *testing.T) {
	e := newEnv(t, nil)
	key := make([]byte, 32)
	rand.Read(key)
	pk := base64.StdEncoding.EncodeToString(key)
	tok := "tok-" + base64.RawURLEncoding.EncodeToString(key[:20])
	file := "id,attestation,primaryKey,token,tags.site\n" +
		"e-1," + "symmetric_key," + pk + ",,north\n" +
		"e-2,token,," + tok + ",south\n" +
		"e-3,symmetric_key,,,\n"
	r := e.do("POST", "/v1/scopes/default/imports?kind=enrollments", e.admin, file, "Content-Type", "text/csv")
	if r.status != 200 {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	if len(lines) != 4 {
		t.Fatalf("import answer: got %d lines, want 3 results and a summary:\n%s", len(lines), r.body)
	}
	var res registry.ImportResult
	if err := json.Unmarshal([]byte(lines[2]), &res); err != nil || res.Row != 4 || res.OK || res.Code != gatehouse.EInvalid {
		t.Errorf("row 4: got %s, want invalid (no key)", lines[2])
	}
	var sum struct{ Summary registry.ImportSummary }
	if err := json.Unmarshal([]byte(lines[3]), &sum); err != nil || sum.Summary.Created != 2 || sum.Summary.Rejected != 1 {
		t.Errorf("summary: got %s", lines[3])
	}
	if bytes.Contains(r.body, []byte(pk)) || bytes.Contains(r.body, []byte(tok)) {
		t.Errorf("the import's answer holds a secret")
	}
	// Without kind the same file is a device file, whose header it is not.
	e.do("POST", "/v1/scopes/default/imports", e.admin, file, "Content-Type", "text/csv").problem(t, 400, gatehouse.EInvalid)
	e.do("POST", "/v1/scopes/default/imports?kind=cats", e.admin, file, "Content-Type", "text/csv").problem(t, 400, gatehouse.EInvalid)

	for _, tc := range []struct{ query, ct, want string }{
		{"", mediaNDJSON, `"id":"e-2"`},
		{"?format=csv", mediaCSV, "tags.site"},
		{"?format=csv&tagKeys=site&attestation=token", mediaCSV, "e-2,"},
	} {
		r := e.do("GET", "/v1/scopes/default/exports/enrollments"+tc.query, e.admin, nil)
		if r.status != 200 || r.header.Get("Content-Type") != tc.ct || !bytes.Contains(r.body, []byte(tc.want)) {
			t.Errorf("export%s: %d %s\n%s", tc.query, r.status, r.header.Get("Content-Type"), r.body)
		}
		if bytes.Contains(r.body, []byte(pk)) || bytes.Contains(r.body, []byte(tok)) {
			t.Errorf("export%s holds a secret", tc.query)
		}
		if tc.query == "?format=csv&tagKeys=site&attestation=token" && bytes.Contains(r.body, []byte("e-1,")) {
			t.Errorf("export%s: the attestation filter let e-1 through:\n%s", tc.query, r.body)
		}
	}
	e.do("GET", "/v1/scopes/default/exports/enrollments?attestation=psk", e.admin, nil).problem(t, 400, gatehouse.EInvalid)
	e.do("GET", "/v1/scopes/default/exports/enrollments?format=xml", e.admin, nil).problem(t, 400, gatehouse.EInvalid)
	e.do("GET", "/v1/scopes/nope/exports/enrollments", e.admin, nil).problem(t, 404, gatehouse.ENotFound)
}
