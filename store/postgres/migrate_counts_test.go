package postgres_test

import (
	"context"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
)

// TestMigrationEnrollmentCounts upgrades a version 6 database, whose
// enrollments keep their counts in body, to version 7: the counts move to
// their columns and read back the same.
func TestMigrationEnrollmentCounts(t *testing.T) {
	dsn := newDatabase(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	now := ts()
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
	s.Close()
	// Back to version 6: the counts in body, as version 6 wrote them.
	downgrade(t, dsn, 6)
	conn := connect(t, dsn)
	for _, q := range []string{
		`UPDATE enrollments SET body = jsonb_set(jsonb_set(body::jsonb, '{registrations}', '7'), '{attestation,uses}', '3')::json WHERE id = 'group'`,
		`UPDATE enrollments SET body = (body::jsonb - 'registrations' #- '{attestation,uses}')::json WHERE id = 'token'`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	s = mustOpen(t, dsn)
	wantVersions(t, dsn)
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
