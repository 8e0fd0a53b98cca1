package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/jackc/pgx/v5"
)

func connect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	c, err := connectConn(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// appliedVersions returns the rows of schema_version.
func appliedVersions(tb testing.TB, dsn string) []int {
	tb.Helper()
	rows, err := connect(tb, dsn).Query(context.Background(), `SELECT version FROM schema_version ORDER BY version`)
	if err != nil {
		tb.Fatalf("read schema_version: %v", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		tb.Fatalf("read schema_version: %v", err)
	}
	return vs
}

func wantVersions(tb testing.TB, dsn string) {
	tb.Helper()
	got := appliedVersions(tb, dsn)
	if len(got) != postgres.LatestVersion {
		tb.Fatalf("schema_version: got %v, want 1..%d once each", got, postgres.LatestVersion)
	}
	for i, v := range got {
		if v != i+1 {
			tb.Fatalf("schema_version: got %v, want 1..%d once each", got, postgres.LatestVersion)
		}
	}
}

func TestOpenTwice(t *testing.T) {
	dsn := newDatabase(t)
	ctx := context.Background()
	s1, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	if err := s1.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: time.Now().UTC().Truncate(time.Microsecond)})
	}); err != nil {
		t.Fatalf("CreateScope: %v", err)
	}
	s1.Close()

	s2 := mustOpen(t, dsn)
	if err := s2.Ready(ctx); err != nil {
		t.Fatalf("Ready after second Open: %v", err)
	}
	if _, err := s2.GetScope(ctx, "acme"); err != nil {
		t.Errorf("GetScope after second Open: got %v, want the scope written before", err)
	}
	wantVersions(t, dsn)
}

// TestOpenConcurrent starts several nodes at once on an empty database: all
// must come up, and each migration must run exactly once.
func TestOpenConcurrent(t *testing.T) {
	dsn := newDatabase(t)
	const nodes = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range nodes {
		wg.Go(func() {
			<-start
			s, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				t.Errorf("node %d: Open: %v", i, err)
				return
			}
			defer s.Close()
			if err := s.Ready(context.Background()); err != nil {
				t.Errorf("node %d: Ready: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	wantVersions(t, dsn)
}

// TestOpenWaitsForMigrationLock holds the migration lock as another node
// would while migrating: Open must wait for it.
func TestOpenWaitsForMigrationLock(t *testing.T) {
	dsn := newDatabase(t)
	ctx := context.Background()
	holder := connect(t, dsn)
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, postgres.MigrateLockKey); err != nil {
		t.Fatalf("lock: %v", err)
	}
	opened := make(chan error, 1)
	go func() {
		s, err := postgres.Open(ctx, dsn)
		if err == nil {
			s.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		t.Fatalf("Open returned (err %v) while another node held the migration lock", err)
	case <-time.After(500 * time.Millisecond):
	}
	// Nothing was migrated while the lock was held.
	var exists bool
	if err := holder.QueryRow(ctx, `SELECT to_regclass('devices') IS NOT NULL`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("devices table exists while the migration lock is held by another session")
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, postgres.MigrateLockKey); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("Open after the lock was released: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Open did not return after the lock was released")
	}
	wantVersions(t, dsn)
	// And Open released the lock when done.
	var got bool
	if err := holder.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, postgres.MigrateLockKey).Scan(&got); err != nil || !got {
		t.Errorf("pg_try_advisory_lock after Open: got %v (err %v), want true", got, err)
	}
}

// TestOpenRefusesNewerSchema: a node left behind by an upgrade must not run
// against a schema it does not know.
func TestOpenRefusesNewerSchema(t *testing.T) {
	dsn := newDatabase(t)
	ctx := context.Background()
	old := mustOpen(t, dsn)
	if _, err := connect(t, dsn).Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, postgres.LatestVersion+1); err != nil {
		t.Fatal(err)
	}
	s, err := postgres.Open(ctx, dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open on a newer schema: got nil error")
	}
	if !strings.Contains(err.Error(), "upgrade Gatehouse") {
		t.Errorf("Open on a newer schema: got %q, want it to say to upgrade", err)
	}
	err = old.Ready(ctx)
	if got := gatehouse.ErrorCode(err); got != gatehouse.EUnavailable {
		t.Errorf("Ready on a newer schema: got code %q (err %v), want %q", got, err, gatehouse.EUnavailable)
	}
}

func TestOpenErrors(t *testing.T) {
	serverDSN(t) // the unreachable case needs no server, but keeps to the same switch
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name, dsn string
		code      string
		secret    string // must not appear in the user-safe message
	}{
		{"unreachable", "postgres://postgres:hunter2@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5", gatehouse.EUnavailable, "127.0.0.1"},
		{"malformed", "postgres://postgres:hunter2@127.0.0.1:notaport/postgres", gatehouse.EInvalid, "hunter2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := postgres.Open(ctx, tc.dsn)
			if err == nil {
				s.Close()
				t.Fatal("Open: got nil error")
			}
			if got := gatehouse.ErrorCode(err); got != tc.code {
				t.Errorf("Open: got code %q (err %v), want %q", got, err, tc.code)
			}
			if msg := gatehouse.ErrorMessage(err); strings.Contains(msg, tc.secret) || strings.Contains(msg, "hunter2") {
				t.Errorf("user-safe message %q leaks connection details", msg)
			}
		})
	}
}
