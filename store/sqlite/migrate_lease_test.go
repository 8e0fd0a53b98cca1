package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// TestMigrationImportJobLease upgrades a version 7 database holding import
// jobs to version 8: a finished job's heartbeat is the last time it changed,
// an unfinished one gets a full lease from the upgrade on.
func TestMigrationImportJobLease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	created := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	started, finished := created.Add(time.Minute), created.Add(2*time.Minute)
	if err := s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: created}); err != nil {
			return err
		}
		for _, j := range []*gatehouse.ImportJob{
			{ID: "ij-1", State: gatehouse.JobSucceeded, StartedAt: &started, FinishedAt: &finished},
			{ID: "ij-2", State: gatehouse.JobRunning, StartedAt: &started},
			{ID: "ij-3", State: gatehouse.JobQueued},
		} {
			j.Scope, j.Kind, j.Mode, j.Format, j.Node, j.CreatedAt, j.ExpiresAt = "acme", "devices", "create", "csv", "n1", created, created.Add(time.Hour*24)
			if err := tx.CreateImportJob(j); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Back to version 7.
	downgrade(t, s, 7)
	s.Close()

	before := time.Now().Add(-time.Second)
	s, err = Open(path)
	if err != nil {
		t.Fatalf("Open a version 7 file: %v", err)
	}
	defer s.Close()
	after := time.Now().Add(time.Second)
	if j, err := s.GetImportJob(ctx, "acme", "ij-1"); err != nil || !j.HeartbeatAt.Equal(finished) {
		t.Errorf("finished job after the upgrade: %+v (err %v), want heartbeat = finishedAt %v", j, err, finished)
	}
	for _, id := range []string{"ij-2", "ij-3"} {
		if j, err := s.GetImportJob(ctx, "acme", id); err != nil || j.HeartbeatAt.Before(before) || j.HeartbeatAt.After(after) {
			t.Errorf("unfinished job %s after the upgrade: %+v (err %v), want heartbeat = the upgrade's time", id, j, err)
		}
	}
	js, err := s.ListImportJobs(ctx, gatehouse.ImportJobFilter{Unfinished: true, HeartbeatBefore: before})
	if err != nil || len(js) != 0 {
		t.Errorf("lapsed leases right after the upgrade: %v (err %v), want none", js, err)
	}
}
