package registry_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/secret"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/gatehouse-iot/gatehouse/store/postgres/pgtest"
	"github.com/gatehouse-iot/gatehouse/store/sqlite"
)

// slowStore delays every transaction, so that a job of a few thousand
// records runs long enough to be canceled or stopped between batches.
type slowStore struct {
	gatehouse.Store
	delay time.Duration
}

func (s slowStore) Update(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	time.Sleep(s.delay)
	return s.Store.Update(ctx, fn)
}

// jobNode is a registry with import jobs running, over a store.
type jobNode struct {
	reg   *registry.Service
	dir   string
	admin *gatehouse.Principal
	stop  func() // stops RunImportJobs and waits for it
}

func openStores(t *testing.T, fn func(t *testing.T, st gatehouse.Store)) {
	open := map[string]func(t *testing.T) gatehouse.Store{
		"sqlite": func(t *testing.T) gatehouse.Store {
			st, err := sqlite.Open(filepath.Join(t.TempDir(), "gh.db"))
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		"postgres": func(t *testing.T) gatehouse.Store {
			st, err := postgres.Open(context.Background(), pgtest.NewDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			st := open[name](t)
			t.Cleanup(func() { st.Close() })
			fn(t, st)
		})
	}
}

var testKeyring = sync.OnceValue(func() *secret.Keyring {
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	kr, err := secret.NewKeyring(key)
	if err != nil {
		panic(err)
	}
	return kr
})

// startJobNode starts a node's registry with import jobs over st.
func startJobNode(t *testing.T, st gatehouse.Store, cfg registry.ImportJobConfig, opts ...registry.Option) *jobNode {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "import-jobs")
	}
	ctx := context.Background()
	reg, admin := caNode(t, st, append([]registry.Option{registry.WithImportJobs(cfg)}, opts...)...)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); reg.RunImportJobs(runCtx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	// RunImportJobs accepts jobs once it has recovered.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := reg.CreateImportJob(ctx, admin, "no-such-scope", registry.ImportJobCreate{Format: registry.ImportCSV, Body: strings.NewReader("")})
		if gatehouse.ErrorCode(err) == gatehouse.ENotFound || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return &jobNode{reg: reg, dir: cfg.Dir, admin: admin, stop: stop}
}

func (n *jobNode) create(t *testing.T, scope, kind string, mode registry.ImportMode, format registry.ImportFormat, body string) *registry.ImportJobInfo {
	t.Helper()
	info, err := n.reg.CreateImportJob(context.Background(), n.admin, scope, registry.ImportJobCreate{Kind: kind, Mode: mode, Format: format, Body: strings.NewReader(body)})
	if err != nil {
		t.Fatalf("CreateImportJob: %v", err)
	}
	if info.State != gatehouse.JobQueued || !strings.HasPrefix(info.ID, "ij-") {
		t.Errorf("new job: state %s id %q, want queued ij-...", info.State, info.ID)
	}
	return info
}

// wait polls a job until cond holds.
func (n *jobNode) wait(t *testing.T, scope, id string, what string, cond func(*registry.ImportJobInfo) bool) *registry.ImportJobInfo {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := n.reg.GetImportJob(context.Background(), n.admin, scope, id)
		if err != nil {
			t.Fatalf("GetImportJob: %v", err)
		}
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: not %s after 30s: %+v", id, what, j)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func finished(j *registry.ImportJobInfo) bool { return j.State.Finished() }

func (n *jobNode) results(t *testing.T, scope, id string) (string, bool) {
	t.Helper()
	res, err := n.reg.ImportJobResults(context.Background(), n.admin, scope, id)
	if err != nil {
		t.Fatalf("ImportJobResults: %v", err)
	}
	var b bytes.Buffer
	if err := res.WriteTo(context.Background(), &b); err != nil {
		t.Fatalf("write results: %v", err)
	}
	return b.String(), res.Full
}

// syncImport runs the synchronous import and returns its answer as the
// API streams it: result lines, then the summary line.
func syncImport(t *testing.T, reg *registry.Service, p *gatehouse.Principal, scope string, mode registry.ImportMode, body string) string {
	t.Helper()
	var b bytes.Buffer
	emit := func(rs []registry.ImportResult) error {
		for _, r := range rs {
			fmt.Fprintln(&b, mustJSON(t, r))
		}
		return nil
	}
	sum, err := reg.ImportDevices(context.Background(), p, scope, registry.ImportRequest{Mode: mode, Format: registry.ImportCSV, Body: strings.NewReader(body)}, emit)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(&b, mustJSON(t, map[string]any{"summary": sum}))
	return b.String()
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

const mixedFile = "id,state,tags.site\n" +
	"dev-1,,berlin\n" +
	"BAD ID,,berlin\n" +
	"dev-2,active,paris\n" +
	"dev-3,sleeping,x\n" +
	"dev-1,,again\n" +
	"dev-4,,\xff\n" +
	"dev-5,,ok\n"

func TestImportJobMatchesSyncImport(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		n := startJobNode(t, st, registry.ImportJobConfig{})
		ctx := context.Background()
		if _, err := n.reg.CreateScope(ctx, n.admin, "sync"); err != nil {
			t.Fatal(err)
		}
		job := n.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, mixedFile)
		j := n.wait(t, "default", job.ID, "finished", finished)
		if j.State != gatehouse.JobSucceeded || j.Rows != 7 || j.OK != 3 || j.Rejected != 4 || j.Unchanged != 0 || j.Error != nil {
			t.Errorf("finished job: %+v; want succeeded, rows 7, ok 3, rejected 4", j)
		}
		if j.StartedAt == nil || j.FinishedAt == nil || j.CreatedBy != n.admin.Actor() {
			t.Errorf("finished job: startedAt %v finishedAt %v createdBy %q", j.StartedAt, j.FinishedAt, j.CreatedBy)
		}
		got, full := n.results(t, "default", job.ID)
		want := syncImport(t, n.reg, n.admin, "sync", registry.ImportCreate, mixedFile)
		if !full || got != want {
			t.Errorf("job results (full %v):\n%s\nwant the synchronous import's:\n%s", full, got, want)
		}
		// The spool is gone; the result file stays, 0600.
		entries, _ := os.ReadDir(n.dir)
		if len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ".results.ndjson") {
			t.Errorf("job directory after the job: %v, want only the result file", entries)
		}
		if fi, err := os.Stat(filepath.Join(n.dir, job.ID+".results.ndjson")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("result file: %v (err %v), want 0600", fi.Mode(), err)
		}
		if fi, err := os.Stat(n.dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("job directory: %v (err %v), want 0700", fi.Mode(), err)
		}

		// Running it again: the applied rows come back unchanged.
		again := n.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, mixedFile)
		j2 := n.wait(t, "default", again.ID, "finished", finished)
		if j2.State != gatehouse.JobSucceeded || j2.OK != 3 || j2.Unchanged != 3 || j2.Rejected != 4 {
			t.Errorf("re-run: %+v; want ok 3, all unchanged, rejected 4", j2)
		}
		page, err := n.reg.ListImportJobs(ctx, n.admin, "default", "", 1)
		if err != nil || len(page.Items) != 1 || page.Items[0].ID != again.ID || page.NextCursor == "" {
			t.Fatalf("ListImportJobs: %+v (err %v), want the newest job and a cursor", page, err)
		}
		page, err = n.reg.ListImportJobs(ctx, n.admin, "default", page.NextCursor, 1)
		if err != nil || len(page.Items) != 1 || page.Items[0].ID != job.ID {
			t.Errorf("ListImportJobs page 2: %+v (err %v), want the first job", page, err)
		}

		// One import.finished event per job.
		evs, err := n.reg.Events(ctx, n.admin, "default", 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		count := 0
		for _, e := range evs {
			if e.Type == registry.EventImportFinished {
				count++
			}
		}
		if count != 2 {
			t.Errorf("import.finished events: %d, want 2", count)
		}
	})
}

// TestImportJobSecondNode: a node that did not run the job answers its
// status and serves the refused records the database keeps.
func TestImportJobSecondNode(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		a := startJobNode(t, st, registry.ImportJobConfig{Node: "node-a"})
		b := startJobNode(t, st, registry.ImportJobConfig{Node: "node-b"})
		job := a.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, mixedFile)
		ja := a.wait(t, "default", job.ID, "finished", finished)
		jb := b.wait(t, "default", job.ID, "finished", finished)
		if jb.Rows != ja.Rows || jb.Rejected != ja.Rejected || jb.State != ja.State || jb.Node != "node-a" {
			t.Errorf("status from node b: %+v, from node a: %+v", jb, ja)
		}
		full, isFull := a.results(t, "default", job.ID)
		partial, isFull2 := b.results(t, "default", job.ID)
		if !isFull || isFull2 {
			t.Errorf("full result file: on node a %v, on node b %v; want true, false", isFull, isFull2)
		}
		var wantLines []string
		for _, l := range strings.Split(strings.TrimSpace(full), "\n") {
			if strings.Contains(l, `"ok":false`) {
				wantLines = append(wantLines, l)
			}
		}
		gotLines := strings.Split(strings.TrimSpace(partial), "\n")
		if len(gotLines) != len(wantLines)+1 || strings.Join(gotLines[:len(wantLines)], "\n") != strings.Join(wantLines, "\n") {
			t.Errorf("results from node b:\n%s\nwant the refused lines of node a's file:\n%s", partial, strings.Join(wantLines, "\n"))
		}
		if last := gotLines[len(gotLines)-1]; !strings.HasPrefix(last, `{"summary":{"rows":7,"ok":3,"rejected":4`) {
			t.Errorf("summary from node b: %s", last)
		}
	})
}

func deviceFile(n int) string {
	var b strings.Builder
	b.WriteString("id\n")
	for i := range n {
		fmt.Fprintf(&b, "d-%06d\n", i)
	}
	return b.String()
}

func TestImportJobCancel(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		n := startJobNode(t, slowStore{st, 40 * time.Millisecond}, registry.ImportJobConfig{})
		ctx := context.Background()
		const total = 40 * registry.ImportBatchSize
		job := n.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, deviceFile(total))
		n.wait(t, "default", job.ID, "past two batches", func(j *registry.ImportJobInfo) bool { return j.Rows >= 2*registry.ImportBatchSize })
		c, err := n.reg.CancelImportJob(ctx, n.admin, "default", job.ID)
		if err != nil || !c.CancelRequested {
			t.Fatalf("CancelImportJob: %+v, %v", c, err)
		}
		j := n.wait(t, "default", job.ID, "finished", finished)
		if j.State != gatehouse.JobCanceled {
			t.Fatalf("after cancel: %+v, want canceled", j)
		}
		if j.Rows%registry.ImportBatchSize != 0 || j.Rows >= total || j.OK != j.Rows {
			t.Errorf("canceled job counted %d rows (ok %d); want whole batches, fewer than %d", j.Rows, j.OK, total)
		}
		// Exactly the counted rows were written: no half batch.
		counts, err := n.reg.CountDevices(ctx, n.admin, "default", "state")
		if err != nil {
			t.Fatal(err)
		}
		if got := counts.Counts["provisioned"]; got != j.Rows {
			t.Errorf("devices written: %d, job counted %d", got, j.Rows)
		}
		_, err = n.reg.CancelImportJob(ctx, n.admin, "default", job.ID)
		if gatehouse.ErrorCode(err) != gatehouse.EConflict {
			t.Errorf("cancel of a finished job: got %v, want conflict", err)
		}
		if _, err := os.Stat(filepath.Join(n.dir, job.ID+".spool")); !os.IsNotExist(err) {
			t.Errorf("spool after cancel: %v, want it deleted", err)
		}
	})
}

func TestImportJobRestart(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		dir := filepath.Join(t.TempDir(), "jobs")
		a := startJobNode(t, slowStore{st, 40 * time.Millisecond}, registry.ImportJobConfig{Node: "node-1", Dir: dir})
		job := a.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, deviceFile(40*registry.ImportBatchSize))
		a.wait(t, "default", job.ID, "running", func(j *registry.ImportJobInfo) bool { return j.Rows > 0 })
		a.stop() // the node shuts down
		j := a.wait(t, "default", job.ID, "finished", finished)
		if j.State != gatehouse.JobFailed || j.Error == nil || j.Error.Message != registry.ErrImportJobNodeRestarted || j.Rows%registry.ImportBatchSize != 0 {
			t.Errorf("job of a stopped node: %+v (error %+v), want failed: %q", j, j.Error, registry.ErrImportJobNodeRestarted)
		}

		// A crash leaves the job running and its spool on disk; the
		// restarted node fails the job and deletes the spool.
		crashed := &gatehouse.ImportJob{Scope: "default", ID: "ij-0000000000001-000000000000", Kind: "devices", Mode: "create",
			Format: "csv", State: gatehouse.JobRunning, Node: "node-1", CreatedBy: "token:x", CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
			ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond), HeartbeatAt: time.Now().UTC().Truncate(time.Microsecond)}
		other := *crashed
		other.ID, other.Node = "ij-0000000000002-000000000000", "node-2"
		if err := st.Update(context.Background(), func(tx gatehouse.Tx) error {
			if err := tx.CreateImportJob(crashed); err != nil {
				return err
			}
			return tx.CreateImportJob(&other)
		}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, crashed.ID+".spool"), []byte("ciphertext"), 0o600); err != nil {
			t.Fatal(err)
		}
		b := startJobNode(t, st, registry.ImportJobConfig{Node: "node-1", Dir: dir})
		j = b.wait(t, "default", crashed.ID, "finished", finished)
		if j.State != gatehouse.JobFailed || j.Error == nil || j.Error.Code != gatehouse.EUnavailable || j.Error.Message != registry.ErrImportJobNodeRestarted {
			t.Errorf("crashed job after restart: %+v (error %+v)", j, j.Error)
		}
		if _, err := os.Stat(filepath.Join(dir, crashed.ID+".spool")); !os.IsNotExist(err) {
			t.Errorf("spool of the crashed job: %v, want deleted", err)
		}
		if j, _ := b.reg.GetImportJob(context.Background(), b.admin, "default", other.ID); j.State != gatehouse.JobRunning {
			t.Errorf("another node's job: %s, want running (not this node's to fail)", j.State)
		}
	})
}

// TestImportJobSpoolEncrypted greps the job directory for the keys and
// tokens of an enrollment file, while the job runs and after.
func TestImportJobSpoolEncrypted(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		n := startJobNode(t, slowStore{st, 40 * time.Millisecond}, registry.ImportJobConfig{})
		var file strings.Builder
		file.WriteString("id,attestation,primaryKey,token\n")
		var secrets [][]byte
		for i := range 3 * registry.ImportBatchSize {
			key := make([]byte, 32)
			rand.Read(key)
			k64 := base64.StdEncoding.EncodeToString(key)
			if i%2 == 0 {
				fmt.Fprintf(&file, "e-%05d,symmetric_key,%s,\n", i, k64)
				secrets = append(secrets, key, []byte(k64))
			} else {
				tok := "tok-" + base64.RawURLEncoding.EncodeToString(key)
				fmt.Fprintf(&file, "e-%05d,token,,%s\n", i, tok)
				secrets = append(secrets, []byte(tok))
			}
		}
		job := n.create(t, "default", registry.ImportKindEnrollments, registry.ImportCreate, registry.ImportCSV, file.String())
		grep := func(when string) int {
			files := 0
			filepath.WalkDir(n.dir, func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				files++
				b, err := os.ReadFile(path)
				if err != nil {
					return nil // removed meanwhile
				}
				if strings.HasSuffix(path, ".spool") && len(b) < file.Len() {
					// Still being written is impossible: the job exists
					// only once the spool is complete.
					t.Errorf("%s: spool %d bytes, want at least the file's %d", when, len(b), file.Len())
				}
				for _, s := range secrets {
					if bytes.Contains(b, s) {
						t.Fatalf("%s: %s holds a secret of the file", when, filepath.Base(path))
					}
				}
				return nil
			})
			return files
		}
		n.wait(t, "default", job.ID, "running", func(j *registry.ImportJobInfo) bool { return j.State == gatehouse.JobRunning })
		if _, err := os.Stat(filepath.Join(n.dir, job.ID+".spool")); err != nil {
			t.Errorf("spool while running: %v", err)
		}
		if files := grep("while running"); files == 0 {
			t.Errorf("while running: no file to check")
		}
		j := n.wait(t, "default", job.ID, "finished", finished)
		if j.State != gatehouse.JobSucceeded || j.OK != 3*registry.ImportBatchSize {
			t.Errorf("enrollment job: %+v", j)
		}
		grep("after")
		got, _ := n.results(t, "default", job.ID)
		for _, s := range secrets {
			if strings.Contains(got, string(s)) {
				t.Fatal("the results hold a secret of the file")
			}
		}
	})
}

func TestImportJobLimits(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		var mu sync.Mutex
		now := time.Now()
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		n := startJobNode(t, slowStore{st, 30 * time.Millisecond}, registry.ImportJobConfig{MaxConcurrent: 1, MaxUpload: 64 << 10, TTL: time.Hour}, registry.WithClock(clock))
		ctx := context.Background()
		job := n.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, deviceFile(3000))
		_, err := n.reg.CreateImportJob(ctx, n.admin, "default", registry.ImportJobCreate{Format: registry.ImportCSV, Body: strings.NewReader("id\nx\n")})
		if gatehouse.ErrorCode(err) != gatehouse.ERateLimited {
			t.Errorf("second job at once: got %v, want rate_limited", err)
		}
		n.wait(t, "default", job.ID, "finished", finished)
		// A job seen finished has given up its slot and its spool.
		if a := n.reg.ImportJobsActive(); a != 0 {
			t.Errorf("after the job finished: %d jobs active, want 0", a)
		}
		if _, err := os.Stat(filepath.Join(n.dir, job.ID+".spool")); !os.IsNotExist(err) {
			t.Errorf("after the job finished, its spool: %v, want deleted", err)
		}
		_, err = n.reg.CreateImportJob(ctx, n.admin, "default", registry.ImportJobCreate{Format: registry.ImportCSV, Body: strings.NewReader(deviceFile(10000))})
		if gatehouse.ErrorCode(err) != gatehouse.EBodyTooLarge {
			t.Errorf("upload over the limit: got %v, want body_too_large", err)
		}
		if entries, _ := os.ReadDir(n.dir); len(entries) != 1 {
			t.Errorf("after a refused upload: %d files, want only the first job's result file", len(entries))
		}
		// Bad requests.
		for _, req := range []registry.ImportJobCreate{
			{Kind: "gadgets", Format: registry.ImportCSV},
			{Mode: "merge", Format: registry.ImportCSV},
			{Format: "xml"},
		} {
			req.Body = strings.NewReader("id\n")
			if _, err := n.reg.CreateImportJob(ctx, n.admin, "default", req); gatehouse.ErrorCode(err) != gatehouse.EInvalid {
				t.Errorf("CreateImportJob(%+v): got %v, want invalid", req, err)
			}
		}
		// A file the import refuses whole: the job fails and says why.
		bad := n.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, "name\nx\n")
		if j := n.wait(t, "default", bad.ID, "finished", finished); j.State != gatehouse.JobFailed || j.Error == nil || j.Error.Code != gatehouse.EInvalid {
			t.Errorf("job with a wrong header: %+v (error %+v), want failed, invalid", j, j.Error)
		}

		// Expiry: the job and its result file go.
		mu.Lock()
		now = now.Add(2 * time.Hour)
		mu.Unlock()
		old := filepath.Join(n.dir, job.ID+".results.ndjson")
		os.Chtimes(old, now.Add(-2*time.Hour), now.Add(-2*time.Hour))
		if err := n.reg.SweepImportJobs(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := n.reg.GetImportJob(ctx, n.admin, "default", job.ID); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("expired job: got %v, want not_found", err)
		}
		if _, err := os.Stat(old); !os.IsNotExist(err) {
			t.Errorf("expired job's result file: %v, want deleted", err)
		}
	})
}

func TestImportJobAuthorization(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		n := startJobNode(t, st, registry.ImportJobConfig{})
		ctx := context.Background()
		if _, err := n.reg.CreateScope(ctx, n.admin, "other"); err != nil {
			t.Fatal(err)
		}
		job := n.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, mixedFile)
		n.wait(t, "default", job.ID, "finished", finished)
		token := func(scope string, role gatehouse.Role) *gatehouse.Principal {
			g, err := n.reg.CreateToken(ctx, n.admin, scope, registry.TokenRequest{Name: "t", Role: role})
			if err != nil {
				t.Fatal(err)
			}
			p, err := n.reg.Authenticate(ctx, g.Secret)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		viewer, otherAdmin := token("default", gatehouse.RoleViewer), token("other", gatehouse.RoleAdmin)
		_, err := n.reg.CreateImportJob(ctx, viewer, "default", registry.ImportJobCreate{Format: registry.ImportCSV, Body: strings.NewReader("id\nv\n")})
		if gatehouse.ErrorCode(err) != gatehouse.EForbidden {
			t.Errorf("viewer creates a job: got %v, want forbidden", err)
		}
		if _, err := n.reg.CancelImportJob(ctx, viewer, "default", job.ID); gatehouse.ErrorCode(err) != gatehouse.EForbidden {
			t.Errorf("viewer cancels a job: got %v, want forbidden", err)
		}
		if _, err := n.reg.GetImportJob(ctx, viewer, "default", job.ID); err != nil {
			t.Errorf("viewer reads a job: %v", err)
		}
		if _, err := n.reg.GetImportJob(ctx, otherAdmin, "default", job.ID); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("other scope's admin reads a job: got %v, want not_found", err)
		}
		if _, err := n.reg.GetImportJob(ctx, otherAdmin, "other", job.ID); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("a job asked for in another scope: got %v, want not_found", err)
		}
		if _, err := n.reg.ImportJobResults(ctx, otherAdmin, "default", job.ID); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("other scope's admin reads results: got %v, want not_found", err)
		}
		if _, err := n.reg.GetImportJob(ctx, n.admin, "default", "../../etc/passwd"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("a path as job ID: got %v, want not_found", err)
		}
	})
}
