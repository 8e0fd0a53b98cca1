package postgres_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
)

func ts() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func testDevice(scope, id string) *gatehouse.Device {
	t := ts()
	return &gatehouse.Device{
		ID: id, Scope: scope, State: gatehouse.StateProvisioned,
		Connection: gatehouse.Connection{Status: gatehouse.Offline},
		Tags:       map[string]string{"env": "prod"},
		Config:     []byte(`{}`), Reported: []byte(`{}`),
		CreatedAt: t, UpdatedAt: t, ETag: "1",
	}
}

// TestExpectedErrorsKeepTxUsable: in PostgreSQL any failed statement aborts
// the transaction. The store must produce its ordinary errors (duplicate,
// missing, stale etag) without one, so that fn may handle them and go on.
func TestExpectedErrorsKeepTxUsable(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if err := s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: ts()}); err != nil {
			return err
		}
		if err := tx.CreateToken(&gatehouse.Token{ID: "aaaaaaaaaaaaaaaa", Scope: "acme", Name: "t", Role: gatehouse.RoleAdmin, Hash: []byte{1}, CreatedAt: ts()}); err != nil {
			return err
		}
		return tx.CreateDevice(testDevice("acme", "d1"))
	}); err != nil {
		t.Fatalf("setup: %v", err)
	}

	err := s.Update(ctx, func(tx gatehouse.Tx) error {
		steps := []struct {
			name string
			err  error
			code string
		}{
			{"CreateScope duplicate", tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: ts()}), gatehouse.EConflict},
			{"CreateToken duplicate", tx.CreateToken(&gatehouse.Token{ID: "aaaaaaaaaaaaaaaa", Scope: "acme", Name: "t", Role: gatehouse.RoleAdmin, Hash: []byte{1}, CreatedAt: ts()}), gatehouse.EConflict},
			{"CreateDevice duplicate", tx.CreateDevice(testDevice("acme", "d1")), gatehouse.EConflict},
			{"GetScope missing", func() error { _, err := tx.GetScope("nope"); return err }(), gatehouse.ENotFound},
			{"GetDevice missing", func() error { _, err := tx.GetDevice("acme", "nope"); return err }(), gatehouse.ENotFound},
			{"UpdateDevice stale", tx.UpdateDevice(testDevice("acme", "d1"), "stale"), gatehouse.EPreconditionFailed},
			{"UpdateDevice missing", tx.UpdateDevice(testDevice("acme", "nope"), "1"), gatehouse.ENotFound},
			{"DeleteDevice missing", tx.DeleteDevice("acme", "nope"), gatehouse.ENotFound},
			{"RevokeToken missing", tx.RevokeToken("zzzzzzzzzzzzzzzz", ts()), gatehouse.ENotFound},
			{"AddStateChange missing", tx.AddStateChange("acme", "nope", &gatehouse.StateChange{From: "a", To: "b", Time: ts()}), gatehouse.ENotFound},
		}
		for _, st := range steps {
			if got := gatehouse.ErrorCode(st.err); got != st.code {
				t.Errorf("%s: got code %q (err %v), want %q", st.name, got, st.err, st.code)
			}
		}
		// The transaction still works and commits.
		return tx.CreateScope(&gatehouse.Scope{ID: "after", CreatedAt: ts()})
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if _, err := s.GetScope(ctx, "after"); err != nil {
		t.Errorf("GetScope(after): %v; the write after handled errors was lost", err)
	}
}

// TestSwallowedErrorDoesNotCommit: when fn ignores a database error that
// aborted the transaction and returns nil, Update must report an error, not
// pretend the earlier writes committed.
func TestSwallowedErrorDoesNotCommit(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	err := s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateScope(&gatehouse.Scope{ID: "lost", CreatedAt: ts()}); err != nil {
			return err
		}
		// PostgreSQL text cannot hold NUL: the statement fails and aborts
		// the transaction.
		if err := tx.CreateScope(&gatehouse.Scope{ID: "bad\x00scope", CreatedAt: ts()}); err == nil {
			t.Errorf("CreateScope with a NUL byte: got nil error")
		}
		return nil
	})
	if err == nil {
		t.Fatal("Update: got nil error after fn swallowed a database error")
	}
	if _, err := s.GetScope(ctx, "lost"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
		t.Errorf("GetScope(lost): got %v, want not_found", err)
	}
}

// TestUpdateRetriesDeadlock makes two transactions lock two devices in
// opposite orders. PostgreSQL aborts one with deadlock_detected; Update must
// run its fn again, and both must succeed.
func TestUpdateRetriesDeadlock(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if err := s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: ts()}); err != nil {
			return err
		}
		if err := tx.CreateDevice(testDevice("acme", "a")); err != nil {
			return err
		}
		return tx.CreateDevice(testDevice("acme", "b"))
	}); err != nil {
		t.Fatalf("setup: %v", err)
	}

	var calls atomic.Int32
	var both sync.WaitGroup // both hold their first lock
	both.Add(2)
	var wg sync.WaitGroup
	for i, order := range [][2]string{{"a", "b"}, {"b", "a"}} {
		var attempt int
		wg.Go(func() {
			err := s.Update(ctx, func(tx gatehouse.Tx) error {
				calls.Add(1)
				attempt++
				d, err := tx.GetDevice("acme", order[0])
				if err != nil {
					return err
				}
				if attempt == 1 {
					both.Done()
					both.Wait()
				}
				if _, err := tx.GetDevice("acme", order[1]); err != nil {
					return err
				}
				prev := d.ETag
				d.ETag = prev + "+" + string(rune('x'+i))
				return tx.UpdateDevice(d, prev)
			})
			if err != nil {
				t.Errorf("writer %d: Update: %v", i, err)
			}
		})
	}
	wg.Wait()
	// PostgreSQL breaks the deadlock by aborting one of the two (on a
	// loaded machine its retry can meet the other again): at least one
	// retry, and both updates land.
	if got := calls.Load(); got < 3 {
		t.Errorf("fn calls: got %d, want at least 3 (a deadlock victim retried)", got)
	}
	for i, id := range []string{"a", "b"} {
		d, err := s.GetDevice(ctx, "acme", id)
		if err != nil {
			t.Fatal(err)
		}
		if want := "+" + string(rune('x'+i)); !strings.HasSuffix(d.ETag, want) {
			t.Errorf("device %s etag %q: writer %d's update is missing", id, d.ETag, i)
		}
	}
}

// TestTwoNodes runs read-modify-write increments and event appends through
// two stores (two nodes, two pools) on one database: no update is lost and
// the event sequence has no gap or duplicate.
func TestTwoNodes(t *testing.T) {
	dsn := newDatabase(t)
	nodes := []*postgres.Store{mustOpen(t, dsn), mustOpen(t, dsn)}
	ctx := context.Background()
	if err := nodes[0].Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: ts()}); err != nil {
			return err
		}
		d := testDevice("acme", "counter")
		d.ETag = "0"
		return tx.CreateDevice(d)
	}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	const perWorker, workersPerNode = 20, 4
	var wg sync.WaitGroup
	for _, s := range nodes {
		for range workersPerNode {
			wg.Go(func() {
				for range perWorker {
					err := s.Update(ctx, func(tx gatehouse.Tx) error {
						d, err := tx.GetDevice("acme", "counter")
						if err != nil {
							return err
						}
						n, _ := strconv.Atoi(d.ETag)
						prev := d.ETag
						d.ETag = strconv.Itoa(n + 1)
						if err := tx.UpdateDevice(d, prev); err != nil {
							return err
						}
						return tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: gatehouse.EventDeviceUpdated, Time: ts(), Subject: "devices/counter"})
					})
					if err != nil {
						t.Errorf("increment: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	const total = 2 * workersPerNode * perWorker
	d, err := nodes[1].GetDevice(ctx, "acme", "counter")
	if err != nil {
		t.Fatal(err)
	}
	if d.ETag != strconv.Itoa(total) {
		t.Errorf("counter: got %s, want %d", d.ETag, total)
	}
	evs, err := nodes[0].ListEvents(ctx, "acme", 0, gatehouse.MaxEventPage)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i+1, e.Seq)
		}
	}
	if len(evs) != total {
		t.Errorf("events: got %d, want %d", len(evs), total)
	}
}

// TestEventWrittenAtCommitFails: events are numbered and written after fn
// returns; one PostgreSQL refuses there fails Update, and nothing of the
// transaction commits, the event counter included.
func TestEventWrittenAtCommitFails(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if err := s.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: ts()})
	}); err != nil {
		t.Fatal(err)
	}
	err := s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateDevice(testDevice("acme", "kept-out")); err != nil {
			return err
		}
		if err := tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: "ok", Time: ts()}); err != nil {
			return err
		}
		return tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: "bad\x00type", Time: ts()})
	})
	if err == nil {
		t.Fatal("Update: got nil error for an event PostgreSQL refuses")
	}
	if _, err := s.GetDevice(ctx, "acme", "kept-out"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
		t.Errorf("GetDevice(kept-out): got %v, want not_found", err)
	}
	e := &gatehouse.Event{Scope: "acme", Type: "next", Time: ts()}
	if err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.AppendEvent(e) }); err != nil {
		t.Fatal(err)
	}
	if e.Seq != 1 {
		t.Errorf("the next event took seq %d, want 1 (the failed transaction's numbers returned)", e.Seq)
	}
}

// TestDeferredWriteFailsAtCommit: a write through gatehouse.Deferred is
// queued, not sent (its method returns nil even for a row PostgreSQL will
// refuse); the database error comes from Update, the transaction leaves
// nothing, its connection goes back to the pool usable, and the failure is
// not retried.
func TestDeferredWriteFailsAtCommit(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if err := s.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: ts()})
	}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	err := s.Update(ctx, func(tx gatehouse.Tx) error {
		calls++
		w := gatehouse.Deferred(tx, nil)
		if err := w.CreateDevice(testDevice("acme", "kept-out")); err != nil {
			return err
		}
		// PostgreSQL text cannot hold NUL.
		if err := w.AddStateChange("acme", "kept-out", &gatehouse.StateChange{To: gatehouse.StateActive, Reason: "bad\x00reason", Time: ts()}); err != nil {
			t.Errorf("deferred AddStateChange returned %v before anything was sent", err)
			return err
		}
		return tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: "lost", Time: ts()})
	})
	if err == nil {
		t.Fatal("Update: got nil error for a deferred write PostgreSQL refuses")
	}
	if calls != 1 {
		t.Errorf("fn ran %d times, want 1 (not a retryable error)", calls)
	}
	if _, err := s.GetDevice(ctx, "acme", "kept-out"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
		t.Errorf("GetDevice(kept-out): got %v, want not_found", err)
	}
	// Every pooled connection works (none was left inside the failed
	// transaction), and the event numbers came back.
	for i := range 8 {
		e := &gatehouse.Event{Scope: "acme", Type: "next", Time: ts()}
		if err := s.Update(ctx, func(tx gatehouse.Tx) error {
			if _, err := tx.GetScope("acme"); err != nil {
				return err
			}
			return tx.AppendEvent(e)
		}); err != nil {
			t.Fatalf("Update %d after the failure: %v", i, err)
		}
		if e.Seq != int64(i+1) {
			t.Errorf("event %d took seq %d", i+1, e.Seq)
		}
	}
}

// TestEmptyUpdateSendsNothing: a transaction that made no statement needs
// no BEGIN or COMMIT, and still succeeds.
func TestEmptyUpdateSendsNothing(t *testing.T) {
	s := newStore(t)
	if err := s.Update(context.Background(), func(tx gatehouse.Tx) error { return nil }); err != nil {
		t.Fatalf("Update with an empty fn: %v", err)
	}
}

// TestDeferredRefusalAfterAbort: a deferred write refused (a stale etag)
// in a batch whose later statement fails keeps its own error: the read that
// says why it was refused cannot run in the aborted transaction, and the
// caller must still see a refusal (the registration retries on it), not
// "current transaction is aborted".
func TestDeferredRefusalAfterAbort(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	e := &gatehouse.Enrollment{ID: "line", Scope: "acme", Type: gatehouse.EnrollmentGroup, Enabled: true,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}, CreatedAt: ts(), UpdatedAt: ts(), ETag: "e1"}
	if err := s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: ts()}); err != nil {
			return err
		}
		return tx.CreateEnrollment(e)
	}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	err := s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := gatehouse.Deferred(tx, nil).CountEnrollmentUse(gatehouse.EnrollmentUse{Scope: "acme", ID: "line", ETag: "stale", Registrations: 1}); err != nil {
			return err
		}
		// Sent with the queued count, after it; fails (text cannot hold NUL).
		tx.CreateScope(&gatehouse.Scope{ID: "bad\x00scope", CreatedAt: ts()})
		return nil
	})
	if got := gatehouse.ErrorCode(err); got != gatehouse.EPreconditionFailed {
		t.Errorf("Update: got %v (code %q), want the count's refusal (%s)", err, got, gatehouse.EPreconditionFailed)
	}
}
