package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/storetest"
)

// MustOpen opens a fresh store in a temporary directory and closes it when
// the test ends.
func MustOpen(tb testing.TB, opts ...Option) *Store {
	tb.Helper()
	s, err := Open(filepath.Join(tb.TempDir(), "sub", "gatehouse.db"), opts...)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func newStore(tb testing.TB) gatehouse.Store { return MustOpen(tb) }

func TestConformance(t *testing.T) { storetest.Run(t, newStore) }

func BenchmarkStore(b *testing.B) { storetest.Bench(b, newStore) }

func TestPragmas(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	for _, tc := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
	} {
		var got string
		if err := s.w.conn.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("writer PRAGMA %s: got %v, want %v", tc.pragma, got, tc.want)
		}
		// Every reader connection has them too.
		if err := s.readDB.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("reader PRAGMA %s: got %v, want %v", tc.pragma, got, tc.want)
		}
	}
	var qo string
	if err := s.readDB.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil || qo != "1" {
		t.Errorf("reader PRAGMA query_only: got %v (err %v), want 1", qo, err)
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "gatehouse.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	d := &gatehouse.Device{ID: "d1", Scope: "acme", State: gatehouse.StateActive, Connection: gatehouse.Connection{Status: gatehouse.Offline},
		Tags: map[string]string{"env": "prod"}, Config: []byte(`{"a":1}`), Reported: []byte(`{}`), CreatedAt: now, UpdatedAt: now, ETag: "1"}
	err = s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: now}); err != nil {
			return err
		}
		if err := tx.CreateDevice(d); err != nil {
			return err
		}
		return tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: gatehouse.EventDeviceCreated, Time: now})
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Update(ctx, func(gatehouse.Tx) error { return nil }); gatehouse.ErrorCode(err) != gatehouse.EUnavailable {
		t.Errorf("Update after Close: got %v, want unavailable", err)
	}

	s, err = Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	got, err := s.GetDevice(ctx, "acme", "d1")
	if err != nil {
		t.Fatalf("GetDevice after reopen: %v", err)
	}
	if got.ETag != "1" || got.Tags["env"] != "prod" || string(got.Config) != `{"a":1}` {
		t.Errorf("device after reopen: got %+v, want %+v", got, d)
	}
	e := &gatehouse.Event{Scope: "acme", Type: "x", Time: now}
	if err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.AppendEvent(e) }); err != nil || e.Seq != 2 {
		t.Errorf("event after reopen: got seq %d (err %v), want 2", e.Seq, err)
	}
}

func TestGroupCommit(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	const writers, each = 64, 20
	if err := s.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: time.Now().UTC()})
	}); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				err := s.Update(ctx, func(tx gatehouse.Tx) error {
					return tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: "x", Time: time.Now().UTC(), Subject: fmt.Sprint(w, "/", i)})
				})
				if err != nil {
					t.Errorf("Update: %v", err)
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	updates, commits := st.Updates-before.Updates, st.Commits-before.Commits
	t.Logf("%d updates in %d commits (%.1f per commit)", updates, commits, float64(updates)/float64(commits))
	if updates != writers*each {
		t.Errorf("updates: got %d, want %d", updates, writers*each)
	}
	if commits >= updates/2 {
		t.Errorf("commits: got %d for %d updates, want fewer than half: group commit is not batching", commits, updates)
	}
	evs, err := s.ListEvents(ctx, "acme", 0, 10000)
	if err != nil || len(evs) != writers*each {
		t.Errorf("events: got %d (err %v), want %d", len(evs), err, writers*each)
	}
}

func TestBatchIsolation(t *testing.T) {
	// One writer goroutine, many callers: the failing ones roll back to
	// their savepoints, the others commit in the same batches.
	s := MustOpen(t)
	ctx := context.Background()
	if err := s.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: time.Now().UTC()})
	}); err != nil {
		t.Fatal(err)
	}
	errOdd := errors.New("odd")
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := s.Update(ctx, func(tx gatehouse.Tx) error {
				if _, err := tx.PutSettingIfAbsent(fmt.Sprint("k", i), []byte("v")); err != nil {
					return err
				}
				if err := tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: "x", Time: time.Now().UTC(), Subject: fmt.Sprint(i)}); err != nil {
					return err
				}
				if i%2 == 1 {
					return errOdd
				}
				return nil
			})
			if want := i%2 == 1; errors.Is(err, errOdd) != want || (!want && err != nil) {
				t.Errorf("update %d: got %v, want error %v", i, err, want)
			}
		})
	}
	wg.Wait()
	for i := range n {
		_, err := s.GetSetting(ctx, fmt.Sprint("k", i))
		if got, want := err == nil, i%2 == 0; got != want {
			t.Errorf("setting k%d persisted: got %v, want %v (err %v)", i, got, want, err)
		}
	}
	evs, err := s.ListEvents(ctx, "acme", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: a rolled-back savepoint left a gap", i, e.Seq)
		}
	}
	if len(evs) != n/2 {
		t.Errorf("events: got %d, want %d", len(evs), n/2)
	}
	if st := s.Stats(); st.Commits >= st.Updates {
		t.Logf("note: %d commits for %d updates; this run did not batch", st.Commits, st.Updates)
	}
}

func TestCommitFailureFailsBatch(t *testing.T) {
	// A constraint deferred to COMMIT fails the whole batch: every caller
	// whose fn succeeded gets an error and nothing persists.
	s := MustOpen(t)
	ctx := context.Background()
	if err := s.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: time.Now().UTC()})
	}); err != nil {
		t.Fatal(err)
	}
	// Hold the writer inside one fn while the others queue, so that they
	// run in the same batch as the one that breaks the commit.
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, 10)
	wg.Go(func() {
		errs[0] = s.Update(ctx, func(t gatehouse.Tx) error {
			close(started)
			<-release
			return nil
		})
	})
	<-started
	for i := 1; i < 10; i++ {
		wg.Go(func() {
			errs[i] = s.Update(ctx, func(tx gatehouse.Tx) error {
				if i == 5 {
					// Breaks COMMIT: a deferred foreign key left dangling.
					if _, err := rawConn(tx).ExecContext(bg, `PRAGMA defer_foreign_keys = ON`); err != nil {
						return err
					}
					_, err := rawConn(tx).ExecContext(bg, `INSERT INTO device_tags (scope, device_id, key, value) VALUES ('acme', 'ghost', 'k', 'v')`)
					return err
				}
				return tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: "x", Time: time.Now().UTC()})
			})
		})
	}
	waitQueued(t, s, 9)
	close(release)
	wg.Wait()
	if errs[0] != nil {
		t.Errorf("update 0 (its own batch): got %v, want nil", errs[0])
	}
	for i, err := range errs[1:] {
		i++
		if err == nil {
			t.Errorf("update %d: got nil, want an error (the batch's COMMIT failed)", i)
		} else if code := gatehouse.ErrorCode(err); code != gatehouse.EUnavailable {
			t.Errorf("update %d: got code %s (%v), want unavailable", i, code, err)
		} else if strings.Contains(gatehouse.ErrorMessage(err), "INSERT") {
			t.Errorf("update %d: message leaks SQL: %q", i, gatehouse.ErrorMessage(err))
		}
	}
	if st := s.Stats(); st.Commits != 2 {
		t.Errorf("commits: got %d, want 2 (the scope, update 0)", st.Commits)
	}
	if evs, err := s.ListEvents(ctx, "acme", 0, 100); err != nil || len(evs) != 0 {
		t.Errorf("events after failed commit: got %d (err %v), want 0", len(evs), err)
	}
	// And the store carries on.
	e := &gatehouse.Event{Scope: "acme", Type: "x", Time: time.Now().UTC()}
	if err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.AppendEvent(e) }); err != nil || e.Seq != 1 {
		t.Errorf("update after failed commit: got seq %d (err %v), want 1", e.Seq, err)
	}
}

// rawConn is the writer's connection under a Tx, to break things with.
func rawConn(t gatehouse.Tx) *sql.Conn { return t.(*tx).w.conn }

// waitQueued waits until n requests wait in the writer's queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.w.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("queue: got %d requests, want %d", len(s.w.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestUpdateContext(t *testing.T) {
	s := MustOpen(t)
	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- s.Update(context.Background(), func(gatehouse.Tx) error {
			close(started)
			<-release
			return nil
		})
	}()
	<-started
	// A caller whose ctx ends while queued gets ctx.Err() and its fn never runs.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ran := false
	err := s.Update(ctx, func(tx gatehouse.Tx) error { ran = true; return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Update with expired ctx: got %v, want %v", err, context.DeadlineExceeded)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("first Update: %v", err)
	}
	// Let the writer drain the abandoned request, then check it did not run.
	if err := s.Update(context.Background(), func(gatehouse.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if ran {
		t.Errorf("fn of an abandoned Update ran")
	}
}

func TestErrorsDoNotLeakSQL(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	create := func(tx gatehouse.Tx) error {
		return tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: time.Now().UTC()})
	}
	if err := s.Update(ctx, create); err != nil {
		t.Fatal(err)
	}
	err := s.Update(ctx, create)
	if gatehouse.ErrorCode(err) != gatehouse.EConflict {
		t.Fatalf("duplicate scope: got %v, want conflict", err)
	}
	if msg := gatehouse.ErrorMessage(err); strings.Contains(msg, "UNIQUE") || strings.Contains(msg, "constraint") {
		t.Errorf("message: got %q, want no SQL detail", msg)
	}
	if !strings.Contains(err.Error(), "UNIQUE") {
		t.Errorf("err.Error(): got %q, want the driver's cause wrapped", err)
	}
	// A device in a scope that does not exist.
	err = s.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.CreateDevice(&gatehouse.Device{Scope: "nope", ID: "d1", State: gatehouse.StateProvisioned, Tags: map[string]string{}})
	})
	if gatehouse.ErrorCode(err) != gatehouse.ENotFound || !strings.Contains(gatehouse.ErrorMessage(err), `scope "nope"`) {
		t.Errorf("device in missing scope: got %v, want not_found naming the scope", err)
	}
}

func TestMigrationVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := s.readDB.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != latestVersion() {
		t.Errorf("schema version: got %d (err %v), want %d", v, err, latestVersion())
	}
	if err := s.Ready(context.Background()); err != nil {
		t.Errorf("Ready: %v", err)
	}
	// A newer binary migrated the file.
	if _, err := s.w.conn.ExecContext(context.Background(), `UPDATE schema_version SET version = ?`, latestVersion()+1); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(context.Background()); gatehouse.ErrorCode(err) != gatehouse.EUnavailable {
		t.Errorf("Ready on a newer schema: got %v, want unavailable", err)
	}
	s.Close()
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open on a newer schema: got %v, want a refusal", err)
	}
	// Reopening a current file applies nothing and keeps the data.
	path2 := filepath.Join(t.TempDir(), "g.db")
	for range 2 {
		s, err := Open(path2)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		s.Close()
	}
	if _, err := os.Stat(path2); err != nil {
		t.Errorf("database file: %v", err)
	}
}

func TestOpenRejectsURIs(t *testing.T) {
	for _, p := range []string{"", "file:x.db", "x.db?mode=memory"} {
		if _, err := Open(p); gatehouse.ErrorCode(err) != gatehouse.EInvalid {
			t.Errorf("Open(%q): got %v, want invalid", p, err)
		}
	}
}

// TestBackgroundCheckpoint: commits wake the checkpointer, which copies the
// WAL into the database file off the writer, and the writer's own automatic
// checkpoint stays a distant backstop.
func TestBackgroundCheckpoint(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	var auto int
	if err := s.w.conn.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil || auto != walAutoCheckpoint {
		t.Fatalf("writer PRAGMA wal_autocheckpoint: got %d (err %v), want %d", auto, err, walAutoCheckpoint)
	}
	before := s.ckpt.runs.Load()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: now})
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.ckpt.runs.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint ran within 10s of a commit")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEventSequenceAcrossRestart: the writer keeps event sequences in
// memory; they continue from the database after a reopen, and a rolled-back
// fn's numbers are given out again (no gap).
func TestEventSequenceAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	appendOne := func(s *Store, fail bool) (int64, error) {
		var seq int64
		err := s.Update(ctx, func(tx gatehouse.Tx) error {
			e := &gatehouse.Event{Scope: "acme", Type: "test", Time: now}
			if err := tx.AppendEvent(e); err != nil {
				return err
			}
			seq = e.Seq
			if fail {
				return errors.New("boom")
			}
			return nil
		})
		return seq, err
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: now}) }); err != nil {
		t.Fatal(err)
	}
	for want := int64(1); want <= 3; want++ {
		if seq, err := appendOne(s, false); err != nil || seq != want {
			t.Fatalf("append: seq %d (%v), want %d", seq, err, want)
		}
	}
	if seq, err := appendOne(s, true); err == nil || seq != 4 {
		t.Fatalf("failing append: seq %d (%v), want 4 and an error", seq, err)
	}
	if seq, err := appendOne(s, false); err != nil || seq != 4 {
		t.Fatalf("append after a rolled-back one: seq %d (%v), want 4", seq, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if seq, err := appendOne(s, false); err != nil || seq != 5 {
		t.Fatalf("append after reopening: seq %d (%v), want 5", seq, err)
	}
	evs, err := s.ListEvents(ctx, "acme", 0, 100)
	if err != nil || len(evs) != 5 {
		t.Fatalf("ListEvents: %d events (%v), want 5", len(evs), err)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
	}
}

// TestCommitDelay: after a batch with company, the writer waits for more
// Updates to join the next one, so two that arrive 50ms apart commit
// together; with no delay they commit apart. The wait ends when the batch
// is big (bigBatch): 16 Updates at once and one 50ms later commit apart.
func TestCommitDelay(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, tc := range []struct {
		delay   time.Duration
		withA   int // Updates sent together with "a"
		commits int64
	}{{500 * time.Millisecond, 0, 1}, {0, 0, 2}, {500 * time.Millisecond, bigBatch - 1, 2}} {
		s := MustOpen(t, WithCommitDelay(tc.delay))
		if err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: now}) }); err != nil {
			t.Fatal(err)
		}
		create := func(id string) error {
			return s.Update(ctx, func(tx gatehouse.Tx) error {
				return tx.CreateDevice(&gatehouse.Device{ID: id, Scope: "acme", State: gatehouse.StateProvisioned,
					Connection: gatehouse.Connection{Status: gatehouse.Offline}, Config: []byte(`{}`), Reported: []byte(`{}`), CreatedAt: now, UpdatedAt: now, ETag: "1"})
			})
		}
		// A burst, so that the writer has seen company: hold the writer
		// with a slow Update while the burst queues behind it.
		var wg sync.WaitGroup
		release := make(chan struct{})
		wg.Go(func() { s.Update(ctx, func(gatehouse.Tx) error { <-release; return nil }) })
		time.Sleep(20 * time.Millisecond)
		for i := range 8 {
			wg.Go(func() {
				if err := create(fmt.Sprintf("burst-%d", i)); err != nil {
					t.Error(err)
				}
			})
		}
		time.Sleep(20 * time.Millisecond)
		close(release)
		wg.Wait()

		before := s.Stats().Commits
		wg.Go(func() {
			if err := create("a"); err != nil {
				t.Error(err)
			}
		})
		for i := range tc.withA {
			wg.Go(func() {
				if err := create(fmt.Sprintf("with-a-%d", i)); err != nil {
					t.Error(err)
				}
			})
		}
		time.Sleep(50 * time.Millisecond)
		if err := create("b"); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if got := s.Stats().Commits - before; got != tc.commits {
			t.Errorf("delay %v, %d with the first: Updates 50ms apart took %d commits, want %d", tc.delay, tc.withA, got, tc.commits)
		}
	}
}

// TestOptimisticBatch: batches run without per-request savepoints until a
// fn fails; then the transaction is rolled back, the failed request gets its
// error, and the others run again with savepoints, each committing once.
// The next batch without a failure returns the writer to running without.
func TestOptimisticBatch(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	if err := s.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: time.Now().UTC()})
	}); err != nil {
		t.Fatal(err)
	}
	// savepoints reports whether the batch of an Update runs its fns in
	// savepoints (read on the writer's goroutine).
	savepoints := func() bool {
		var f bool
		if err := s.Update(ctx, func(gatehouse.Tx) error { f = s.w.failing; return nil }); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if savepoints() {
		t.Fatal("the writer starts in savepoint mode")
	}
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s.Update(ctx, func(gatehouse.Tx) error { close(started); <-release; return nil })
	})
	<-started
	errBoom := errors.New("boom")
	var calls [9]atomic.Int32
	errs := make([]error, len(calls))
	for i := range calls {
		wg.Go(func() {
			errs[i] = s.Update(ctx, func(tx gatehouse.Tx) error {
				calls[i].Add(1)
				if err := tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: "x", Time: time.Now().UTC(), Subject: fmt.Sprint(i)}); err != nil {
					return err
				}
				if i == 4 {
					return errBoom // after a write: the whole transaction must go
				}
				return nil
			})
		})
		waitQueued(t, s, i+1) // queued in order
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if want := i == 4; errors.Is(err, errBoom) != want || (!want && err != nil) {
			t.Errorf("update %d: got %v", i, err)
		}
	}
	for i := range calls {
		want := int32(1)
		if i < 4 {
			want = 2 // ran before the failure, then again with savepoints
		}
		if got := calls[i].Load(); got != want {
			t.Errorf("update %d: fn ran %d times, want %d", i, got, want)
		}
	}
	evs, err := s.ListEvents(ctx, "acme", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
		subjects = append(subjects, e.Subject)
	}
	if want := []string{"0", "1", "2", "3", "5", "6", "7", "8"}; !slices.Equal(subjects, want) {
		t.Errorf("events: got subjects %v, want %v (each once, none of the failed update)", subjects, want)
	}
	if !savepoints() {
		t.Error("after a failure the next batch should use savepoints")
	}
	if savepoints() {
		t.Error("after a batch without failures the writer should run without savepoints again")
	}
}
