package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// The upgrade tests of each store write rows with the current code (Seed
// functions), take the database back to the version before a migration,
// open it again, which runs the migration, and check what it made of the
// rows (Check functions). Only taking the schema back is the store's own.

// SeedLeaseJobs writes, in a new scope "acme", three import jobs an hour
// old: ij-1 finished, ij-2 running and ij-3 queued, on node n1. It returns
// ij-1's finish time.
func SeedLeaseJobs(tb testing.TB, s gatehouse.Store) (finished time.Time) {
	tb.Helper()
	created := now().Add(-time.Hour)
	started, finished := created.Add(time.Minute), created.Add(2*time.Minute)
	err := s.Update(context.Background(), func(tx gatehouse.Tx) error {
		if err := tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: created}); err != nil {
			return err
		}
		for _, j := range []*gatehouse.ImportJob{
			{ID: "ij-1", State: gatehouse.JobSucceeded, StartedAt: &started, FinishedAt: &finished},
			{ID: "ij-2", State: gatehouse.JobRunning, StartedAt: &started},
			{ID: "ij-3", State: gatehouse.JobQueued},
		} {
			j.Scope, j.Kind, j.Mode, j.Format, j.Node, j.CreatedAt, j.ExpiresAt = "acme", "devices", "create", "csv", "n1", created, created.Add(24*time.Hour)
			if err := tx.CreateImportJob(j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return finished
}

// CheckLeaseJobs checks SeedLeaseJobs' jobs after the upgrade to version 8
// (import job leases), which ran between before and after: the finished
// job's heartbeat is its finish, the unfinished ones get a full lease from
// the upgrade on, so none has lapsed.
func CheckLeaseJobs(tb testing.TB, s gatehouse.Store, finished, before, after time.Time) {
	tb.Helper()
	ctx := context.Background()
	if j, err := s.GetImportJob(ctx, "acme", "ij-1"); err != nil || !j.HeartbeatAt.Equal(finished) {
		tb.Errorf("finished job after the upgrade: %+v (err %v), want heartbeat = finishedAt %v", j, err, finished)
	}
	for _, id := range []string{"ij-2", "ij-3"} {
		if j, err := s.GetImportJob(ctx, "acme", id); err != nil || j.HeartbeatAt.Before(before) || j.HeartbeatAt.After(after) {
			tb.Errorf("unfinished job %s after the upgrade: %+v (err %v), want heartbeat = the upgrade's time", id, j, err)
		}
	}
	js, err := s.ListImportJobs(ctx, gatehouse.ImportJobFilter{Unfinished: true, HeartbeatBefore: before})
	if err != nil || len(js) != 0 {
		tb.Errorf("lapsed leases right after the upgrade: %v (err %v), want none", js, err)
	}
}

// SeedCountEnrollments writes, in a new scope "acme", two token group
// enrollments, "group" and "token", with etag "1". The store test then
// puts counts into their version-6 bodies: registrations 7 and uses 3 for
// "group", none at all for "token".
func SeedCountEnrollments(tb testing.TB, s gatehouse.Store) {
	tb.Helper()
	t := now()
	err := s.Update(context.Background(), func(tx gatehouse.Tx) error {
		if err := tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: t}); err != nil {
			return err
		}
		for _, id := range []string{"group", "token"} {
			e := &gatehouse.Enrollment{ID: id, Scope: "acme", Type: gatehouse.EnrollmentGroup, Enabled: true,
				Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, MaxUses: 5}, CreatedAt: t, UpdatedAt: t, ETag: "1"}
			if err := tx.CreateEnrollment(e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// CheckCountEnrollments checks SeedCountEnrollments' enrollments after the
// upgrade to version 7 (counts in columns): the counts came from the
// bodies, the etags stayed.
func CheckCountEnrollments(tb testing.TB, s gatehouse.Store) {
	tb.Helper()
	for id, want := range map[string][2]int{"group": {7, 3}, "token": {0, 0}} {
		e, err := s.GetEnrollment(context.Background(), "acme", id)
		if err != nil {
			tb.Fatal(err)
		}
		if got := [2]int{e.Registrations, e.Attestation.Uses}; got != want || e.ETag != "1" {
			tb.Errorf("%s after the upgrade: registrations, uses %v etag %q; want %v and etag 1", id, got, e.ETag, want)
		}
	}
}
