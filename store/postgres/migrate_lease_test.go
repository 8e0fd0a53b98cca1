package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/gatehouse-iot/gatehouse/store/storetest"
)

// TestMigrationImportJobLease upgrades a version 7 database holding import
// jobs to version 8: a finished job's heartbeat is the last time it changed,
// an unfinished one gets a full lease from the upgrade on.
func TestMigrationImportJobLease(t *testing.T) {
	dsn := newDatabase(t)
	s, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	finished := storetest.SeedLeaseJobs(t, s)
	s.Close()
	downgrade(t, dsn, 7)

	before := time.Now().Add(-time.Second)
	s = mustOpen(t, dsn)
	after := time.Now().Add(time.Second)
	wantVersions(t, dsn)
	storetest.CheckLeaseJobs(t, s, finished, before, after)
}
