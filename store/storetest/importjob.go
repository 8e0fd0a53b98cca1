package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func testImportJobs(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	createScopes(t, s, "acme", "beta")
	t0 := now()
	job := func(scope, id, node string, state gatehouse.ImportJobState, expires time.Time) *gatehouse.ImportJob {
		return &gatehouse.ImportJob{Scope: scope, ID: id, Kind: "devices", Mode: "create", Format: "csv", State: state,
			Node: node, CreatedBy: "token:a", CreatedAt: t0, ExpiresAt: expires, HeartbeatAt: t0}
	}
	j1 := job("acme", "ij-0001", "n1", gatehouse.JobQueued, t0.Add(time.Hour))
	j2 := job("acme", "ij-0002", "n2", gatehouse.JobRunning, t0.Add(-time.Hour))
	j3 := job("beta", "ij-0003", "n1", gatehouse.JobSucceeded, t0.Add(time.Hour))
	update(t, s, func(tx gatehouse.Tx) error {
		for _, j := range []*gatehouse.ImportJob{j1, j2, j3} {
			if err := tx.CreateImportJob(j); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := s.GetImportJob(ctx, "acme", "ij-0001")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(j1, got, diffOpts...); d != "" {
		t.Errorf("GetImportJob (-want +got):\n%s", d)
	}
	checkUTC(t, "import job", &got.CreatedAt, &got.ExpiresAt)
	err = s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateImportJob(j1) })
	wantCode(t, "duplicate import job", err, gatehouse.EConflict)
	err = s.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.CreateImportJob(job("nope", "x", "n1", gatehouse.JobQueued, t0))
	})
	wantCode(t, "import job of a missing scope", err, gatehouse.ENotFound)
	_, err = s.GetImportJob(ctx, "beta", "ij-0001")
	wantCode(t, "import job of another scope", err, gatehouse.ENotFound)

	ids := func(js []*gatehouse.ImportJob) []string {
		var out []string
		for _, j := range js {
			out = append(out, j.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    gatehouse.ImportJobFilter
		want []string
	}{
		{"all", gatehouse.ImportJobFilter{}, []string{"ij-0003", "ij-0002", "ij-0001"}},
		{"scope", gatehouse.ImportJobFilter{Scope: "acme"}, []string{"ij-0002", "ij-0001"}},
		{"before", gatehouse.ImportJobFilter{Scope: "acme", Before: "ij-0002"}, []string{"ij-0001"}},
		{"limit", gatehouse.ImportJobFilter{Limit: 1}, []string{"ij-0003"}},
		{"node unfinished", gatehouse.ImportJobFilter{Node: "n1", Unfinished: true}, []string{"ij-0001"}},
		{"expired", gatehouse.ImportJobFilter{ExpiresBefore: t0}, []string{"ij-0002"}},
	} {
		js, err := s.ListImportJobs(ctx, tc.f)
		if err != nil {
			t.Fatalf("ListImportJobs(%s): %v", tc.name, err)
		}
		if d := cmp.Diff(tc.want, ids(js)); d != "" {
			t.Errorf("ListImportJobs(%s) (-want +got):\n%s", tc.name, d)
		}
	}

	// Progress and refused records commit with the transaction, or not at all.
	t1 := t0.Add(time.Second)
	rejects := []*gatehouse.ImportJobReject{{Row: 3, ID: "bad", Code: "invalid_id", Message: "m1"}, {Row: 9, Code: "invalid", Message: "m2"}}
	err = s.Update(ctx, func(tx gatehouse.Tx) error {
		j, err := tx.GetImportJob("acme", "ij-0001")
		if err != nil {
			return err
		}
		j.State, j.Rows, j.OK, j.Rejected, j.StartedAt = gatehouse.JobRunning, 10, 8, 2, &t1
		if err := tx.UpdateImportJob(j); err != nil {
			return err
		}
		if err := tx.AddImportJobRejects("acme", "ij-0001", rejects); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("rolled back update: got %v, want errBoom", err)
	}
	if got, _ := s.GetImportJob(ctx, "acme", "ij-0001"); got.Rows != 0 || got.State != gatehouse.JobQueued {
		t.Errorf("after rollback: rows %d state %s, want 0 queued", got.Rows, got.State)
	}
	if rs, _ := s.ListImportJobRejects(ctx, "acme", "ij-0001", 0, 0); len(rs) != 0 {
		t.Errorf("after rollback: %d rejects, want 0", len(rs))
	}
	want := *j1
	update(t, s, func(tx gatehouse.Tx) error {
		j, err := tx.GetImportJob("acme", "ij-0001")
		if err != nil {
			return err
		}
		j.State, j.Rows, j.OK, j.Unchanged, j.Rejected, j.StartedAt = gatehouse.JobSucceeded, 10, 8, 1, 2, &t1
		j.FinishedAt, j.CancelRequested, j.ErrorCode, j.ErrorMessage = &t1, true, "unavailable", "stopped"
		j.HeartbeatAt = t1
		want = *j
		if err := tx.UpdateImportJob(j); err != nil {
			return err
		}
		return tx.AddImportJobRejects("acme", "ij-0001", rejects)
	})
	got, err = s.GetImportJob(ctx, "acme", "ij-0001")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&want, got, diffOpts...); d != "" {
		t.Errorf("after UpdateImportJob (-want +got):\n%s", d)
	}
	checkUTC(t, "import job", got.StartedAt, got.FinishedAt, &got.HeartbeatAt)
	rs, err := s.ListImportJobRejects(ctx, "acme", "ij-0001", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(rejects, rs); d != "" {
		t.Errorf("ListImportJobRejects (-want +got):\n%s", d)
	}
	if rs, _ := s.ListImportJobRejects(ctx, "acme", "ij-0001", 3, 1); len(rs) != 1 || rs[0].Row != 9 {
		t.Errorf("ListImportJobRejects after row 3: got %v, want row 9", rs)
	}
	err = s.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.UpdateImportJob(job("acme", "ghost", "n1", gatehouse.JobFailed, t0))
	})
	wantCode(t, "update of a missing import job", err, gatehouse.ENotFound)
	err = s.Update(ctx, func(tx gatehouse.Tx) error { return tx.AddImportJobRejects("acme", "ghost", rejects) })
	wantCode(t, "rejects of a missing import job", err, gatehouse.ENotFound)

	update(t, s, func(tx gatehouse.Tx) error { return tx.DeleteImportJob("acme", "ij-0001") })
	_, err = s.GetImportJob(ctx, "acme", "ij-0001")
	wantCode(t, "deleted import job", err, gatehouse.ENotFound)
	if rs, _ := s.ListImportJobRejects(ctx, "acme", "ij-0001", 0, 0); len(rs) != 0 {
		t.Errorf("rejects of a deleted job: got %d, want 0", len(rs))
	}
	err = s.Update(ctx, func(tx gatehouse.Tx) error { return tx.DeleteImportJob("acme", "ij-0001") })
	wantCode(t, "delete of a missing import job", err, gatehouse.ENotFound)
}

// testImportJobLeases: a node renews the heartbeat of the unfinished jobs it
// names in one statement, and the sweeper finds the unfinished jobs whose
// heartbeat is older than the lease.
func testImportJobLeases(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	createScopes(t, s, "acme", "beta")
	t0 := now()
	job := func(scope, id, node string, state gatehouse.ImportJobState, heartbeat time.Time) *gatehouse.ImportJob {
		return &gatehouse.ImportJob{Scope: scope, ID: id, Kind: "devices", Mode: "create", Format: "csv", State: state,
			Node: node, CreatedBy: "token:a", CreatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(time.Hour), HeartbeatAt: heartbeat}
	}
	old, fresh := t0.Add(-10*time.Minute), t0.Add(-10*time.Second)
	jobs := []*gatehouse.ImportJob{
		job("acme", "ij-0001", "n1", gatehouse.JobRunning, old),
		job("beta", "ij-0002", "n1", gatehouse.JobQueued, old),
		job("acme", "ij-0003", "n1", gatehouse.JobSucceeded, old),
		job("acme", "ij-0004", "n2", gatehouse.JobRunning, old),
		job("acme", "ij-0005", "n2", gatehouse.JobRunning, fresh),
		job("acme", "ij-0006", "n1", gatehouse.JobFailed, old),
	}
	update(t, s, func(tx gatehouse.Tx) error {
		for _, j := range jobs {
			if err := tx.CreateImportJob(j); err != nil {
				return err
			}
		}
		return nil
	})
	heartbeat := func(id string) time.Time {
		t.Helper()
		for _, scope := range []string{"acme", "beta"} {
			if j, err := s.GetImportJob(ctx, scope, id); err == nil {
				return j.HeartbeatAt
			}
		}
		t.Fatalf("job %s not found", id)
		return time.Time{}
	}
	lapsed := func(before time.Time) []string {
		t.Helper()
		js, err := s.ListImportJobs(ctx, gatehouse.ImportJobFilter{Unfinished: true, HeartbeatBefore: before})
		if err != nil {
			t.Fatalf("ListImportJobs(lapsed): %v", err)
		}
		var ids []string
		for _, j := range js {
			ids = append(ids, j.ID)
		}
		return ids
	}
	cutoff := t0.Add(-2 * time.Minute)
	if d := cmp.Diff([]string{"ij-0004", "ij-0002", "ij-0001"}, lapsed(cutoff)); d != "" {
		t.Errorf("lapsed leases (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"ij-0005", "ij-0004", "ij-0002", "ij-0001"}, lapsed(t0)); d != "" {
		t.Errorf("lapsed leases with a shorter lease (-want +got):\n%s", d)
	}
	js, err := s.ListImportJobs(ctx, gatehouse.ImportJobFilter{Node: "n1", Unfinished: true, HeartbeatBefore: cutoff, Limit: 1})
	if err != nil || len(js) != 1 || js[0].ID != "ij-0002" {
		t.Errorf("lapsed leases of n1, limit 1: got %v (err %v), want ij-0002", js, err)
	}

	// n1 renews what it runs: its unfinished jobs, in any scope. Finished
	// jobs, other nodes' jobs and unknown IDs stay as they are.
	t1 := t0.Add(time.Second)
	var renewed []string
	update(t, s, func(tx gatehouse.Tx) error {
		var err error
		renewed, err = tx.RenewImportJobs("n1", []string{"ij-0001", "ij-0002", "ij-0003", "ij-0004", "ij-0006", "ghost"}, t1)
		return err
	})
	if d := cmp.Diff([]string{"ij-0001", "ij-0002"}, renewed, cmpopts.SortSlices(func(a, b string) bool { return a < b })); d != "" {
		t.Errorf("RenewImportJobs (-want +got):\n%s", d)
	}
	for id, want := range map[string]time.Time{"ij-0001": t1, "ij-0002": t1, "ij-0003": old, "ij-0004": old, "ij-0006": old} {
		if got := heartbeat(id); !got.Equal(want) {
			t.Errorf("heartbeat of %s after renewal: got %v, want %v", id, got, want)
		}
	}
	if d := cmp.Diff([]string{"ij-0004"}, lapsed(cutoff)); d != "" {
		t.Errorf("lapsed leases after renewal (-want +got):\n%s", d)
	}
	update(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.RenewImportJobs("n1", nil, t1)
		if err == nil && len(got) != 0 {
			t.Errorf("RenewImportJobs of no jobs: got %v, want none", got)
		}
		return err
	})

	// A renewal rolls back with its transaction.
	err = s.Update(ctx, func(tx gatehouse.Tx) error {
		if _, err := tx.RenewImportJobs("n1", []string{"ij-0001"}, t1.Add(time.Hour)); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("rolled back renewal: got %v, want errBoom", err)
	}
	if got := heartbeat("ij-0001"); !got.Equal(t1) {
		t.Errorf("heartbeat after a rolled back renewal: got %v, want %v", got, t1)
	}

	// The sweeper fails a lapsed job; its node's next renewal leaves it out.
	update(t, s, func(tx gatehouse.Tx) error {
		j, err := tx.GetImportJob("acme", "ij-0001")
		if err != nil {
			return err
		}
		j.State, j.FinishedAt, j.ErrorCode = gatehouse.JobFailed, &t1, "lease_expired"
		return tx.UpdateImportJob(j)
	})
	update(t, s, func(tx gatehouse.Tx) error {
		var err error
		renewed, err = tx.RenewImportJobs("n1", []string{"ij-0001", "ij-0002"}, t1.Add(time.Second))
		return err
	})
	if d := cmp.Diff([]string{"ij-0002"}, renewed); d != "" {
		t.Errorf("RenewImportJobs after the sweeper failed a job (-want +got):\n%s", d)
	}
	if got := heartbeat("ij-0001"); !got.Equal(t1) {
		t.Errorf("heartbeat of a failed job: got %v, want %v (not renewed)", got, t1)
	}
}
