package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// waitJob polls a job until it has finished and returns it.
func (e *env) waitJob(scope, id, token string) registry.ImportJobInfo {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var j registry.ImportJobInfo
		e.do("GET", "/v1/scopes/"+scope+"/import-jobs/"+id, token, nil).want(e.t, 200).decode(e.t, &j)
		if j.State.Finished() {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s not finished after 30s: %+v", id, j)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const mixedDevices = "id,state,tags.site\n" +
	"dev-1,,berlin\n" +
	"BAD ID,,berlin\n" +
	"dev-2,active,paris\n" +
	"dev-3,sleeping,x\n" +
	"dev-1,,again\n" +
	"dev-5,,ok\n"

func TestImportJobAPI(t *testing.T) {
	e := newEnv(t, nil)
	e.do("POST", "/v1/scopes", e.admin, map[string]string{"id": "sync"}).want(t, http.StatusCreated)

	r := e.do("POST", "/v1/scopes/default/import-jobs?mode=create", e.admin, mixedDevices, "Content-Type", mediaCSV).want(t, http.StatusAccepted)
	var job registry.ImportJobInfo
	r.decode(t, &job)
	if job.State != gatehouse.JobQueued || job.Kind != "devices" || job.Mode != "create" || job.Format != "csv" || job.CreatedAt.IsZero() {
		t.Errorf("new job: %+v", job)
	}
	if loc := r.header.Get("Location"); loc != "/v1/scopes/default/import-jobs/"+job.ID {
		t.Errorf("Location %q", loc)
	}
	done := e.waitJob("default", job.ID, e.admin)
	if done.State != gatehouse.JobSucceeded || done.Rows != 6 || done.OK != 3 || done.Rejected != 3 || done.Unchanged != 0 {
		t.Errorf("finished job: %+v, want succeeded, rows 6, ok 3, rejected 3", done)
	}

	// The results are what the synchronous import answers for the file.
	res := e.do("GET", "/v1/scopes/default/import-jobs/"+job.ID+"/results", e.admin, nil).want(t, 200)
	want := e.do("POST", "/v1/scopes/sync/imports", e.admin, mixedDevices, "Content-Type", mediaCSV).want(t, 200)
	if string(res.body) != string(want.body) {
		t.Errorf("job results:\n%s\nwant the synchronous import's:\n%s", res.body, want.body)
	}
	if got := res.header.Get("Gatehouse-Results"); got != resultsFull {
		t.Errorf("Gatehouse-Results %q, want %q", got, resultsFull)
	}
	if ct := res.header.Get("Content-Type"); ct != mediaNDJSON {
		t.Errorf("results Content-Type %q", ct)
	}

	// List, newest first, with a cursor.
	second := e.do("POST", "/v1/scopes/default/import-jobs?format=ndjson", e.admin, `{"id":"dev-9"}`+"\n", "Content-Type", "").want(t, http.StatusAccepted)
	var job2 registry.ImportJobInfo
	second.decode(t, &job2)
	e.waitJob("default", job2.ID, e.admin)
	var page list[registry.ImportJobInfo]
	e.do("GET", "/v1/scopes/default/import-jobs?limit=1", e.admin, nil).want(t, 200).decode(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != job2.ID || page.NextCursor == "" {
		t.Fatalf("first page: %+v", page)
	}
	e.do("GET", "/v1/scopes/default/import-jobs?limit=1&cursor="+page.NextCursor, e.admin, nil).want(t, 200).decode(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != job.ID {
		t.Errorf("second page: %+v", page)
	}

	// Errors.
	e.do("DELETE", "/v1/scopes/default/import-jobs/"+job.ID, e.admin, nil).problem(t, 409, gatehouse.EConflict)
	e.do("GET", "/v1/scopes/default/import-jobs/ij-nope", e.admin, nil).problem(t, 404, gatehouse.ENotFound)
	e.do("GET", "/v1/scopes/sync/import-jobs/"+job.ID, e.admin, nil).problem(t, 404, gatehouse.ENotFound)
	e.do("POST", "/v1/scopes/default/import-jobs?kind=gadgets", e.admin, "id\n", "Content-Type", mediaCSV).problem(t, 400, gatehouse.EInvalid)
	e.do("POST", "/v1/scopes/default/import-jobs?mode=merge", e.admin, "id\n", "Content-Type", mediaCSV).problem(t, 400, gatehouse.EInvalid)
	e.do("POST", "/v1/scopes/default/import-jobs", e.admin, "id\n", "Content-Type", "image/png").problem(t, 415, gatehouse.EUnsupportedMedia)
	e.do("GET", "/v1/scopes/default/import-jobs?limit=0", e.admin, nil).problem(t, 400, gatehouse.EInvalid)

	viewer, _ := e.mustToken("default", gatehouse.RoleViewer)
	e.do("POST", "/v1/scopes/default/import-jobs", viewer, "id\nv-1\n", "Content-Type", mediaCSV).problem(t, 403, gatehouse.EForbidden)
	e.do("GET", "/v1/scopes/default/import-jobs/"+job.ID, viewer, nil).want(t, 200)
	e.do("GET", "/v1/scopes/default/import-jobs/"+job.ID+"/results", viewer, nil).want(t, 200)
	otherAdmin, _ := e.mustToken("sync", gatehouse.RoleAdmin)
	e.do("GET", "/v1/scopes/default/import-jobs/"+job.ID, otherAdmin, nil).problem(t, 404, gatehouse.ENotFound)
	e.do("GET", "/v1/scopes/default/import-jobs/"+job.ID+"/results", otherAdmin, nil).problem(t, 404, gatehouse.ENotFound)
	e.do("POST", "/v1/scopes/default/import-jobs", otherAdmin, "id\nx-1\n", "Content-Type", mediaCSV).problem(t, 404, gatehouse.ENotFound)
}

// TestImportJobLimitsAPI: an upload in progress holds the node's only job
// slot, so the next is refused with 429 and Retry-After; a file over the
// size limit is 413.
func TestImportJobLimitsAPI(t *testing.T) {
	e := newEnvWith(t, registry.ImportJobConfig{MaxConcurrent: 1, MaxUpload: 1 << 10}, nil)
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(t.Context(), "POST", e.srv.URL+"/v1/scopes/default/import-jobs", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.admin)
	req.Header.Set("Content-Type", mediaCSV)
	first := make(chan *http.Response, 1)
	go func() {
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Error(err)
		}
		first <- res
	}()
	pw.Write([]byte("id\nslow-1\n"))
	// Once the first upload holds the slot, the next is refused. (Asking
	// earlier would race it: a probe that got the slot first would have the
	// slow upload refused instead.)
	deadline := time.Now().Add(10 * time.Second)
	for e.reg.ImportJobsActive() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the slow upload never took the job slot")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := e.do("POST", "/v1/scopes/default/import-jobs", e.admin, "id\nx-1\n", "Content-Type", mediaCSV)
	r.problem(t, 429, gatehouse.ERateLimited)
	if got := r.header.Get("Retry-After"); got != importJobRetryAfter {
		t.Errorf("Retry-After %q, want %q", got, importJobRetryAfter)
	}
	pw.Close()
	res := <-first
	if res == nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("the slow upload: %v", res)
	}
	var slow registry.ImportJobInfo
	if err := json.NewDecoder(res.Body).Decode(&slow); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if j := e.waitJob("default", slow.ID, e.admin); j.State != gatehouse.JobSucceeded || j.OK != 1 {
		t.Errorf("the slow upload's job: %+v", j)
	}

	e.do("POST", "/v1/scopes/default/import-jobs", e.admin, "id\n"+strings.Repeat("d-123456789\n", 200), "Content-Type", mediaCSV).
		problem(t, 413, gatehouse.EBodyTooLarge)
}
