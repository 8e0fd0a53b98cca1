package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gatehouse-iot/gatehouse/store/storetest"
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
	storetest.SeedCountEnrollments(t, s)
	// Back to version 6: the counts in body, as version 6 wrote them.
	downgrade(t, s, 6)
	for _, q := range []string{
		`UPDATE enrollments SET body = json_set(body, '$.registrations', 7, '$.attestation.uses', 3) WHERE id = 'group'`,
		`UPDATE enrollments SET body = json_remove(body, '$.registrations', '$.attestation.uses') WHERE id = 'token'`,
	} {
		if _, err := s.w.conn.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	if s, err = Open(path); err != nil {
		t.Fatalf("Open a version 6 file: %v", err)
	}
	defer s.Close()
	storetest.CheckCountEnrollments(t, s)
}
