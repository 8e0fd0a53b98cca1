package postgres_test

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/gatehouse-iot/gatehouse/store/postgres"
)

// undo holds, for each migration that an upgrade test starts below, the
// statements that take a database back to the version before it. The
// upgrade tests write rows with the current code, go back with downgrade
// and open the database again, which upgrades it.
var undo = map[int][]string{
	5: {`DROP INDEX events_type_idx`, `DROP INDEX credentials_active_expiry_idx`},
	6: {`DROP TABLE import_job_rejects`, `DROP TABLE import_jobs`},
	7: {`ALTER TABLE enrollments DROP COLUMN registrations, DROP COLUMN uses`},
	8: {`DROP INDEX import_jobs_lease_idx`, `ALTER TABLE import_jobs DROP COLUMN heartbeat_at`},
	9: {`DROP INDEX devices_last_seen_idx`, `CREATE INDEX devices_last_seen_idx ON devices (scope, last_seen, id)`,
		`DROP INDEX credentials_active_expiry_idx`, `CREATE INDEX credentials_active_expiry_idx ON credentials (not_after, scope) WHERE status = 'active'`},
}

// downgrade takes the database at dsn back to version to, latest
// migration first. No store may have it open.
func downgrade(t *testing.T, dsn string, to int) {
	t.Helper()
	ctx := context.Background()
	conn := connect(t, dsn)
	for v := postgres.LatestVersion; v > to; v-- {
		qs, ok := undo[v]
		if !ok {
			t.Fatalf("no undo statements for migration %d: add them to undo in migrate_undo_test.go", v)
		}
		for _, q := range append(slices.Clone(qs), `DELETE FROM schema_version WHERE version >= `+strconv.Itoa(v)) {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("undo migration %d: %s: %v", v, q, err)
			}
		}
	}
}
