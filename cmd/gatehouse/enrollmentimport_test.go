package main

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportExportEnrollments imports a file of individual enrollments
// through the CLI (one row refused), then exports them as CSV and NDJSON:
// neither the result file, the summary nor the exports hold a key or token.
func TestImportExportEnrollments(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	var secrets []string
	var b strings.Builder
	b.WriteString("id,attestation,primaryKey,token,tags.line\n")
	for i := range 5 {
		k := make([]byte, 32)
		rand.Read(k)
		secrets = append(secrets, base64.StdEncoding.EncodeToString(k))
		b.WriteString("f7-" + string(rune('a'+i)) + ",symmetric_key," + secrets[i] + ",,l1\n")
	}
	tok := "tok-" + base64.RawURLEncoding.EncodeToString([]byte("a bootstrap token of some length"))
	secrets = append(secrets, tok)
	b.WriteString("f7-tok,token,," + tok + ",l2\n")
	b.WriteString("f7-nokey,symmetric_key,,,l1\n")
	file := filepath.Join(dir, "factory-7.csv")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	r := n.gh("import", file, "--kind", "enrollments")
	if r.code != 1 || !strings.Contains(r.stdout, "created 6") || !strings.Contains(r.stdout, "rejected: 1") {
		t.Fatalf("import: exit %d (want 1: a row refused)\n%s%s", r.code, r.stdout, r.stderr)
	}
	results, err := os.ReadFile(file + ".result.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(results), "\n"); got != 8 {
		t.Errorf("result file: %d lines, want 7 results and a summary:\n%s", got, results)
	}
	// Again: every good row unchanged.
	r = n.gh("import", file, "--kind", "enrollments")
	if !strings.Contains(r.stdout, "unchanged 6") {
		t.Errorf("re-run: %s", r.stdout)
	}

	out := filepath.Join(dir, "enrollments.csv")
	n.ok("export", "--kind", "enrollments", "--format", "csv", "--out", out)
	csvOut, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(csvOut), "tags.line") || strings.Count(string(csvOut), "\n") != 7 {
		t.Errorf("CSV export: want a header and 6 rows:\n%s", csvOut)
	}
	nd := n.ok("export", "--kind", "enrollments", "--attestation", "symmetric_key")
	if strings.Count(nd, "\n") != 5 {
		t.Errorf("NDJSON export of symmetric_key: want 5 lines:\n%s", nd)
	}
	for _, s := range secrets {
		for what, b := range map[string]string{"result file": string(results), "summary": r.stdout, "CSV export": string(csvOut), "NDJSON export": nd} {
			if strings.Contains(b, s) {
				t.Errorf("the %s holds a secret", what)
			}
		}
	}
	for _, args := range [][]string{
		{"export", "--kind", "enrollments", "--state", "active"},
		{"export", "--attestation", "x509"},
		{"export", "--kind", "cats"},
		{"import", file, "--kind", "cats"},
	} {
		if r := n.gh(args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)\n%s", args, r.code, r.stderr)
		}
	}
}
