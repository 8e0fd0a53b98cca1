package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
	"github.com/gatehouse-iot/gatehouse/store/postgres/pgtest"
)

// upload posts a file as an import job and returns the job's ID.
func (n *node) upload(path, ct, body string) string {
	n.t.Helper()
	req, err := http.NewRequest("POST", n.url+path, strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.admin)
	req.Header.Set("Content-Type", ct)
	resp, err := n.client.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		n.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, raw)
	}
	var j struct {
		ID string `json:"id"`
	}
	if err := jsonUnmarshal(raw, &j); err != nil || j.ID == "" {
		n.t.Fatalf("job document %s: %v", raw, err)
	}
	if loc := resp.Header.Get("Location"); !strings.HasSuffix(loc, "/import-jobs/"+j.ID) {
		n.t.Errorf("Location %q", loc)
	}
	return j.ID
}

// waitJob polls a job on n until done says so.
func (n *node) waitJob(token, id string, done func(map[string]any) bool) map[string]any {
	n.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		j := n.must(token, "GET", "/v1/scopes/default/import-jobs/"+id, "", 200)
		if done(j) {
			return j
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("job %s: %v after 60s", id, j)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jobFinished(j map[string]any) bool {
	s := j["state"]
	return s == "succeeded" || s == "failed" || s == "canceled"
}

// results fetches a job's results and the Gatehouse-Results header.
func (n *node) results(token, id string) (string, string) {
	n.t.Helper()
	req, _ := http.NewRequest("GET", n.url+"/v1/scopes/default/import-jobs/"+id+"/results", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := n.client.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		n.t.Fatalf("results: %d %s", resp.StatusCode, raw)
	}
	return string(raw), resp.Header.Get("Gatehouse-Results")
}

// grepTree fails the test if any file under dir holds one of secrets.
func grepTree(t *testing.T, when, dir string, secrets [][]byte) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // removed meanwhile
		}
		for _, s := range secrets {
			if bytes.Contains(b, s) {
				t.Fatalf("%s: %s holds a secret of the import file", when, path)
			}
		}
		return nil
	})
}

// TestImportJobTwoNodesPostgres: a job uploaded to node A runs there; node
// B, on the same PostgreSQL, answers its status and the rejected records;
// no file of either node ever holds a key or token of the file.
func TestImportJobTwoNodesPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	keyFile := filepath.Join(t.TempDir(), "master.key")
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() *node {
		dir := t.TempDir()
		var logs bytes.Buffer
		srv, err := server.Start(context.Background(), server.Config{
			DataDir: dir, HTTPAddr: "127.0.0.1:0", Database: dsn, MasterKeyFile: keyFile,
			Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		})
		if err != nil {
			t.Fatalf("start node: %v", err)
		}
		t.Cleanup(func() { srv.Close() })
		return attach(t, dir, srv, &logs)
	}
	a, b := start(), start()

	var file strings.Builder
	file.WriteString("id,attestation,primaryKey,token\n")
	var secrets [][]byte
	const rows = 2500
	for i := range rows {
		k := make([]byte, 32)
		rand.Read(k)
		k64 := base64.StdEncoding.EncodeToString(k)
		switch {
		case i%100 == 7:
			fmt.Fprintf(&file, "BAD_%d,symmetric_key,%s,\n", i, k64) // invalid ID
			secrets = append(secrets, []byte(k64))
		case i%2 == 0:
			fmt.Fprintf(&file, "e-%05d,symmetric_key,%s,\n", i, k64)
			secrets = append(secrets, k, []byte(k64))
		default:
			tok := "tok-" + base64.RawURLEncoding.EncodeToString(k)
			fmt.Fprintf(&file, "e-%05d,token,,%s\n", i, tok)
			secrets = append(secrets, []byte(tok))
		}
	}
	id := a.upload("/v1/scopes/default/import-jobs?kind=enrollments", "text/csv", file.String())
	// While it runs, neither node's data directory holds a secret.
	for !jobFinished(b.must(b.admin, "GET", "/v1/scopes/default/import-jobs/"+id, "", 200)) {
		grepTree(t, "while running", a.dir, secrets)
		grepTree(t, "while running", b.dir, secrets)
		time.Sleep(10 * time.Millisecond)
	}
	ja := a.waitJob(a.admin, id, jobFinished)
	jb := b.waitJob(b.admin, id, jobFinished)
	for _, j := range []map[string]any{ja, jb} {
		if j["state"] != "succeeded" || j["rows"] != float64(rows) || j["rejected"] != float64(25) || j["ok"] != float64(rows-25) {
			t.Errorf("job: %v; want succeeded, %d rows, 25 rejected", j, rows)
		}
	}
	grepTree(t, "after", a.dir, secrets)
	grepTree(t, "after", b.dir, secrets)

	full, srcA := a.results(a.admin, id)
	part, srcB := b.results(b.admin, id)
	if srcA != "full" || srcB != "rejected" {
		t.Errorf("Gatehouse-Results: node A %q, node B %q; want full, rejected", srcA, srcB)
	}
	if n := strings.Count(full, "\n"); n != rows+1 {
		t.Errorf("node A's results: %d lines, want %d", n, rows+1)
	}
	if n := strings.Count(part, `"ok":false`); n != 25 {
		t.Errorf("node B's results: %d rejected lines, want 25:\n%s", n, part)
	}
	// The enrollments are there, on both nodes.
	b.must(b.admin, "GET", "/v1/scopes/default/enrollments/e-00000", "", 200)
	// Node B cancels nothing that has finished.
	b.must(b.admin, "DELETE", "/v1/scopes/default/import-jobs/"+id, "", 409)
}

// TestImportJobRestart: a node stopped while a job runs marks it failed,
// and says why, after the restart; the spool is gone.
func TestImportJobRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dir)
	var file strings.Builder
	file.WriteString("id\n")
	for i := range 200_000 {
		fmt.Fprintf(&file, "r-%07d\n", i)
	}
	id := n.upload("/v1/scopes/default/import-jobs", "text/csv", file.String())
	if fi, err := os.Stat(filepath.Join(dir, server.ImportJobsDir)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("import jobs directory: %v (err %v), want 0700", fi, err)
	}
	n.srv.Close()
	n = startNode(t, dir)
	j := n.must(n.admin, "GET", "/v1/scopes/default/import-jobs/"+id, "", 200)
	e, _ := j["error"].(map[string]any)
	if j["state"] != "failed" || e["code"] != "unavailable" || e["message"] != registry.ErrImportJobNodeRestarted {
		t.Errorf("job after the restart: %v", j)
	}
	if rows := j["rows"].(float64); rows >= 200_000 || int(rows)%registry.ImportBatchSize != 0 {
		t.Errorf("job after the restart counted %v rows; want whole batches, not all", rows)
	}
	spools, _ := filepath.Glob(filepath.Join(dir, server.ImportJobsDir, "*.spool"))
	if len(spools) != 0 {
		t.Errorf("spools after the restart: %v", spools)
	}
	// The devices written are exactly the batches counted.
	counts := n.must(n.admin, "GET", "/v1/scopes/default/device-counts?by=state", "", 200)
	if got, _ := counts["total"].(float64); got != j["rows"].(float64) {
		t.Errorf("devices written %v, job counted %v", got, j["rows"])
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestImportJobCancel cancels a long job over HTTPS: it stops between
// batches, and the devices written are exactly the batches it counted.
func TestImportJobCancel(t *testing.T) {
	n := startNode(t, filepath.Join(t.TempDir(), "data"))
	var file strings.Builder
	file.WriteString("id\n")
	const total = 300_000
	for i := range total {
		fmt.Fprintf(&file, "c-%07d\n", i)
	}
	id := n.upload("/v1/scopes/default/import-jobs", "text/csv", file.String())
	n.waitJob(n.admin, id, func(j map[string]any) bool { return j["rows"].(float64) > 0 })
	c := n.must(n.admin, "DELETE", "/v1/scopes/default/import-jobs/"+id, "", 202)
	if c["cancelRequested"] != true {
		t.Errorf("DELETE answered %v, want cancelRequested", c)
	}
	j := n.waitJob(n.admin, id, jobFinished)
	rows := j["rows"].(float64)
	if j["state"] != "canceled" || rows >= total || int(rows)%registry.ImportBatchSize != 0 {
		t.Fatalf("canceled job: %v; want canceled after whole batches, before %d rows", j, total)
	}
	counts := n.must(n.admin, "GET", "/v1/scopes/default/device-counts?by=state", "", 200)
	if got, _ := counts["total"].(float64); got != rows {
		t.Errorf("devices written %v, job counted %v", got, rows)
	}
	// The results hold exactly the committed rows, then the summary.
	res, _ := n.results(n.admin, id)
	if lines := strings.Count(res, "\n"); lines != int(rows)+1 {
		t.Errorf("results: %d lines, want %v rows and a summary", lines, rows)
	}
	if spools, _ := filepath.Glob(filepath.Join(n.dir, server.ImportJobsDir, "*.spool")); len(spools) != 0 {
		t.Errorf("spools after the cancel: %v", spools)
	}
}
