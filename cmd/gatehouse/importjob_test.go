package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportJobCLI runs a file as an import job through the CLI: --async
// prints the ID, status --wait follows it, results writes the same result
// file the synchronous import writes, cancel of a finished job is refused.
func TestImportJobCLI(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "devices.csv")
	body := "id,tags.site\njob-1,a\nBAD ID,b\njob-2,c\njob-1,d\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(n.ok("import", file, "--async"))
	if !strings.HasPrefix(id, "ij-") || strings.Contains(id, "\n") {
		t.Fatalf("import --async printed %q, want the job ID", id)
	}
	r := n.gh("import", "status", id, "--wait")
	if r.code != 1 || !strings.Contains(r.stdout, "succeeded") || !strings.Contains(r.stdout, "rejected") {
		t.Errorf("status --wait: exit %d (want 1: rows rejected)\n%s%s", r.code, r.stdout, r.stderr)
	}
	var j struct {
		State    string `json:"state"`
		Rows     int    `json:"rows"`
		OK       int    `json:"ok"`
		Rejected int    `json:"rejected"`
	}
	if err := json.Unmarshal([]byte(n.ok("import", "status", id, "-o", "json")), &j); err != nil {
		t.Fatal(err)
	}
	if j.State != "succeeded" || j.Rows != 4 || j.OK != 2 || j.Rejected != 2 {
		t.Errorf("status: %+v, want succeeded, 4 rows, 2 ok, 2 rejected", j)
	}
	out := filepath.Join(dir, "job.result.ndjson")
	n.ok("import", "results", id, "--out", out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// The synchronous import of the same file into another scope writes
	// the same result file.
	n.ok("scope", "create", "sync")
	n.gh("import", file, "--scope", "sync")
	want, err := os.ReadFile(file + ".result.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("job results:\n%s\nwant the synchronous import's:\n%s", got, want)
	}
	if list := n.ok("import", "jobs"); !strings.Contains(list, id) {
		t.Errorf("import jobs does not list %s:\n%s", id, list)
	}
	if r := n.gh("import", "cancel", id); r.code == 0 || !strings.Contains(r.stderr, "finished") {
		t.Errorf("cancel of a finished job: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := n.gh("import", "status", "ij-nope"); r.code == 0 {
		t.Errorf("status of a missing job: exit 0")
	}
}
