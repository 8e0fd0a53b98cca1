package postgres_test

import (
	"context"
	"testing"

	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/gatehouse-iot/gatehouse/store/storetest"
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
	storetest.SeedCountEnrollments(t, s)
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
	storetest.CheckCountEnrollments(t, s)
}
