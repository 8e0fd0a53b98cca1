package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// TestMigrationEnrollmentCounts upgrades a version 6 database, whose
// enrollments keep their counts in body, to version 7: the counts move to
// their columns and read back the same.
func TestMigrationEnrollmentCounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: now}); err != nil {
			return err
		}
		for _, id := range []string{"group", "token"} {
			e := &gatehouse.Enrollment{ID: id, Scope: "acme", Type: gatehouse.EnrollmentGroup, Enabled: true,
				Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, MaxUses: 5}, CreatedAt: now, UpdatedAt: now, ETag: "1"}
			if err := tx.CreateEnrollment(e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Back to version 6: the counts in body, as version 6 wrote them.
	downgrade(t, s, 6)
	for _, q := range []string{
		`UPDATE enrollments SET body = json_set(body, '$.registrations', 7, '$.attestation.uses', 3) WHERE id = 'group'`,
		`UPDATE enrollments SET body = json_remove(body, '$.registrations', '$.attestation.uses') WHERE id = 'token'`,
	} {
		if _, err := s.w.conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	if s, err = Open(path); err != nil {
		t.Fatalf("Open a version 6 file: %v", err)
	}
	defer s.Close()
	for id, want := range map[string][2]int{"group": {7, 3}, "token": {0, 0}} {
		e, err := s.GetEnrollment(ctx, "acme", id)
		if err != nil {
			t.Fatal(err)
		}
		if got := [2]int{e.Registrations, e.Attestation.Uses}; got != want || e.ETag != "1" {
			t.Errorf("%s after the upgrade: registrations, uses %v etag %q; want %v and etag 1", id, got, e.ETag, want)
		}
	}
}
