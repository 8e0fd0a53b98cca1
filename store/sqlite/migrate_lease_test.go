package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/store/storetest"
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
	finished := storetest.SeedLeaseJobs(t, s)
	downgrade(t, s, 7)
	s.Close()

	before := time.Now().Add(-time.Second)
	if s, err = Open(path); err != nil {
		t.Fatalf("Open a version 7 file: %v", err)
	}
	defer s.Close()
	storetest.CheckLeaseJobs(t, s, finished, before, time.Now().Add(time.Second))
}
