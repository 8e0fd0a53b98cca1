package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
)

// TestFirstAnalyze: a key table never analyzed is analyzed by the store
// once it holds rows, after which a lookup by (scope, id) plans through the
// primary key; an empty one is left alone (its plans would scan it whole).
func TestFirstAnalyze(t *testing.T) {
	dsn := newDatabase(t)
	ctx := context.Background()
	s := mustOpen(t, dsn)
	conn := connect(t, dsn)
	// Rows written behind the store's back: only its commits count.
	if _, err := conn.Exec(ctx, `INSERT INTO devices (scope, id, state, conn_status, tags, config, reported, enrollment, created_at, updated_at, etag)
		SELECT 'default', 'dev-' || lpad(g::text, 6, '0'), 'provisioned', 'offline', '{}', '{}', '{}', 'line-1', now(), now(), 'e'
		FROM generate_series(1, 2000) AS g`); err != nil {
		t.Fatal(err)
	}
	reltuples := func(table string) float64 {
		t.Helper()
		var n float64
		if err := conn.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)`, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := reltuples("devices"); n >= 0 {
		t.Fatalf("devices: reltuples %v before any commit, want -1 (never analyzed)", n)
	}
	for range postgres.AnalyzeCheckEvery {
		if err := s.Update(ctx, func(tx gatehouse.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for reltuples("devices") < 0 {
		if time.Now().After(deadline) {
			t.Fatal("devices: not analyzed 10 s after the check's commit")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := reltuples("devices"); n != 2000 {
		t.Errorf("devices: reltuples %v, want 2000", n)
	}
	if n := reltuples("credentials"); n >= 0 {
		t.Errorf("credentials (empty): reltuples %v, want -1: an empty table must not be analyzed", n)
	}

	// The plan a pooled connection keeps (generic) reads the primary key.
	for _, q := range []string{`SET plan_cache_mode = force_generic_plan`,
		`PREPARE get(text, text) AS SELECT * FROM devices WHERE scope = $1 AND id = $2 FOR UPDATE`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var plan strings.Builder
	rows, err := conn.Query(ctx, `EXPLAIN EXECUTE get('default', 'dev-000001')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan.String(), "devices_pkey") {
		t.Errorf("generic plan of a device lookup after the analyze:\n%s\nwant an index scan of devices_pkey", plan.String())
	}
}
