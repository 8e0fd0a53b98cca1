package sqlite

import (
	"context"
	"slices"
	"strconv"
	"testing"
)

// undo holds, for each migration that an upgrade test starts below, the
// statements that take a database back to the version before it. The
// upgrade tests write rows with the current code, go back with downgrade
// and open the file again, which upgrades it.
var undo = map[int][]string{
	5: {`DROP INDEX events_type`, `DROP INDEX credentials_active_expiry`},
	6: {`DROP TABLE import_job_rejects`, `DROP TABLE import_jobs`},
	7: {`ALTER TABLE enrollments DROP COLUMN registrations`, `ALTER TABLE enrollments DROP COLUMN uses`},
	8: {`DROP INDEX import_jobs_lease`, `ALTER TABLE import_jobs DROP COLUMN heartbeat_at`},
	9: {`DROP INDEX devices_last_seen`, `CREATE INDEX devices_last_seen ON devices (scope, last_seen, id)`,
		`DROP INDEX credentials_active_expiry`, `CREATE INDEX credentials_active_expiry ON credentials (not_after, scope) WHERE status = 'active'`},
}

// downgrade takes s's database back to version to, latest migration first.
func downgrade(t *testing.T, s *Store, to int) {
	t.Helper()
	ctx := context.Background()
	for v := latestVersion(); v > to; v-- {
		qs, ok := undo[v]
		if !ok {
			t.Fatalf("no undo statements for migration %d: add them to undo in migrate_undo_test.go", v)
		}
		for _, q := range append(slices.Clone(qs), `UPDATE schema_version SET version = `+strconv.Itoa(v-1)) {
			if _, err := s.w.conn.ExecContext(ctx, q); err != nil {
				t.Fatalf("undo migration %d: %s: %v", v, q, err)
			}
		}
	}
}
