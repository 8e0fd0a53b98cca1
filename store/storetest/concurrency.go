package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

func testOptimisticConcurrency(t *testing.T, s gatehouse.Store) {
	ctx := context.Background()
	createScopes(t, s, "acme")
	createDevices(t, s, newDevice("acme", "d1", nil))

	// Two clients read the same version; the first write wins, the second
	// gets EPreconditionFailed and changes nothing.
	a := getDevice(t, s, "acme", "d1")
	b := getDevice(t, s, "acme", "d1")
	a.Tags = map[string]string{"writer": "a"}
	a.ETag = "2"
	b.Tags = map[string]string{"writer": "b"}
	b.ETag = "2b"
	update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateDevice(a, "1") })
	err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.UpdateDevice(b, "1") })
	wantCode(t, "second writer with stale etag", err, gatehouse.EPreconditionFailed)
	got := getDevice(t, s, "acme", "d1")
	if got.ETag != "2" || got.Tags["writer"] != "a" {
		t.Errorf("after stale write: got etag %q writer %q, want %q %q", got.ETag, got.Tags["writer"], "2", "a")
	}
}

// testConcurrentWriters runs read-modify-write increments from many
// goroutines through tx.GetDevice and tx.UpdateDevice: none may be lost.
func testConcurrentWriters(t *testing.T, s gatehouse.Store) {
	const n, m = 16, 25
	createScopes(t, s, "acme")
	d := newDevice("acme", "counter", map[string]string{"n": "0"})
	d.ETag = "0"
	createDevices(t, s, d)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			for range m {
				err := s.Update(context.Background(), func(tx gatehouse.Tx) error {
					d, err := tx.GetDevice("acme", "counter")
					if err != nil {
						return err
					}
					v, err := strconv.Atoi(d.Tags["n"])
					if err != nil {
						return err
					}
					prev := d.ETag
					d.Tags["n"] = strconv.Itoa(v + 1)
					d.Config = fmt.Appendf(nil, `{"n":%d}`, v+1)
					d.ETag = strconv.Itoa(v + 1)
					return tx.UpdateDevice(d, prev)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("increment: %v", err)
	}
	got := getDevice(t, s, "acme", "counter")
	want := strconv.Itoa(n * m)
	if got.Tags["n"] != want || got.ETag != want || string(got.Config) != `{"n":`+want+`}` {
		t.Errorf("counter: got tag %s etag %s config %s, want %s", got.Tags["n"], got.ETag, got.Config, want)
	}
}

func testRollback(t *testing.T, newStore NewStore) {
	ctx := context.Background()

	t.Run("Error", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		d := newDevice("acme", "d1", map[string]string{"v": "1"})
		createDevices(t, s, d)
		appendEvents(t, s, "acme", 2)

		err := s.Update(ctx, func(tx gatehouse.Tx) error {
			if err := tx.CreateScope(&gatehouse.Scope{ID: "ghost", CreatedAt: now()}); err != nil {
				return err
			}
			if err := tx.CreateDevice(newDevice("acme", "d2", map[string]string{"v": "x"})); err != nil {
				return err
			}
			up := d.Clone()
			up.Tags["v"] = "2"
			up.ETag = "2"
			if err := tx.UpdateDevice(up, "1"); err != nil {
				return err
			}
			if err := tx.AddStateChange("acme", "d1", &gatehouse.StateChange{From: "provisioned", To: "active", Actor: "x", Time: now()}); err != nil {
				return err
			}
			if err := tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: gatehouse.EventDeviceCreated, Time: now(), Actor: "x", Subject: "devices/d2"}); err != nil {
				return err
			}
			if _, err := tx.PutSettingIfAbsent("rolled-back", []byte("x")); err != nil {
				return err
			}
			return fmt.Errorf("wrapped: %w", errBoom)
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("Update: got %v, want %v", err, errBoom)
		}
		checkNothingPersisted(t, s)
	})

	t.Run("WriteError", func(t *testing.T) {
		// fn returns the error of a failed write after a successful one:
		// the successful one must not persist either.
		s := newStore(t)
		createScopes(t, s, "acme")
		createDevices(t, s, newDevice("acme", "d1", map[string]string{"v": "1"}))
		appendEvents(t, s, "acme", 2)
		err := s.Update(ctx, func(tx gatehouse.Tx) error {
			if err := tx.CreateDevice(newDevice("acme", "d2", nil)); err != nil {
				return err
			}
			if err := tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: "x", Time: now()}); err != nil {
				return err
			}
			return tx.CreateDevice(newDevice("acme", "d1", nil))
		})
		wantCode(t, "Update with duplicate device", err, gatehouse.EConflict)
		checkNothingPersisted(t, s)
	})

	// Failing and succeeding Updates at once: a backend that batches
	// transactions (store/sqlite's group commit) must roll back exactly the
	// failing ones.
	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		const n = 64
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				id := fmt.Sprintf("d%02d", i)
				err := s.Update(ctx, func(tx gatehouse.Tx) error {
					if err := tx.CreateDevice(newDevice("acme", id, map[string]string{"i": id})); err != nil {
						return err
					}
					if err := tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: "x", Time: now(), Subject: id}); err != nil {
						return err
					}
					if _, err := tx.PutSettingIfAbsent("k-"+id, []byte(id)); err != nil {
						return err
					}
					if i%2 == 1 {
						return errBoom
					}
					return nil
				})
				if want := i%2 == 1; want != errors.Is(err, errBoom) || !want && err != nil {
					t.Errorf("Update %d: got %v, want error %v", i, err, want)
				}
			})
		}
		wg.Wait()
		for i := range n {
			id := fmt.Sprintf("d%02d", i)
			_, err := s.GetDevice(ctx, "acme", id)
			_, serr := s.GetSetting(ctx, "k-"+id)
			if got, want := err == nil && serr == nil, i%2 == 0; got != want || (err == nil) != (serr == nil) {
				t.Errorf("%s persisted: got device %v setting %v, want %v", id, err == nil, serr == nil, want)
			}
		}
		evs, err := s.ListEvents(ctx, "acme", 0, 1000)
		if err != nil {
			t.Fatalf("ListEvents: %v", err)
		}
		if got, want := seqs(evs), seqRange(1, n/2); !equalInts(got, want) {
			t.Errorf("events: got %v, want 1..%d", got, n/2)
		}
		for _, e := range evs {
			var i int
			fmt.Sscanf(e.Subject, "d%d", &i)
			if i%2 == 1 {
				t.Errorf("event of rolled-back Update %s persisted", e.Subject)
			}
		}
	})

	// A panicking fn must not commit anything, and the store must stay
	// usable. The store either re-panics in the caller of Update (what
	// database/sql-style code does, and what store/sqlite does) or returns
	// an error; both pass.
	t.Run("Panic", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		createDevices(t, s, newDevice("acme", "d1", map[string]string{"v": "1"}))
		appendEvents(t, s, "acme", 2)
		var recovered any
		var err error
		func() {
			defer func() { recovered = recover() }()
			err = s.Update(ctx, func(tx gatehouse.Tx) error {
				if err := tx.CreateDevice(newDevice("acme", "d2", nil)); err != nil {
					return err
				}
				if err := tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: "x", Time: now()}); err != nil {
					return err
				}
				panic("storetest: fn panics")
			})
		}()
		if recovered == nil && err == nil {
			t.Fatalf("Update with panicking fn: got nil error and no panic, want either")
		}
		checkNothingPersisted(t, s)
	})
}

// checkNothingPersisted checks the state the Rollback tests start from: scope
// acme, device d1 at etag 1 without history, events 1 and 2, no setting,
// and that the next event gets seq 3.
func checkNothingPersisted(t *testing.T, s gatehouse.Store) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.GetScope(ctx, "ghost"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
		t.Errorf("GetScope(ghost) after rollback: got %v, want not_found", err)
	}
	if _, err := s.GetDevice(ctx, "acme", "d2"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
		t.Errorf("GetDevice(d2) after rollback: got %v, want not_found", err)
	}
	if d := getDevice(t, s, "acme", "d1"); d.ETag != "1" || d.Tags["v"] != "1" {
		t.Errorf("d1 after rollback: got etag %q tag v %q, want %q %q", d.ETag, d.Tags["v"], "1", "1")
	}
	if h, err := s.DeviceHistory(ctx, "acme", "d1"); err != nil || len(h) != 0 {
		t.Errorf("DeviceHistory(d1) after rollback: got %d entries (err %v), want 0", len(h), err)
	}
	list, err := s.ListDevices(ctx, gatehouse.DeviceFilter{Scope: "acme", Selectors: []gatehouse.TagSelector{{Key: "v", Op: gatehouse.SelExists}}, Limit: 10})
	if err != nil || len(list) != 1 {
		t.Errorf("ListDevices(v) after rollback: got %v (err %v), want [d1]", ids(list), err)
	}
	if _, err := s.GetSetting(ctx, "rolled-back"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
		t.Errorf("GetSetting after rollback: got %v, want not_found", err)
	}
	evs, err := s.ListEvents(ctx, "acme", 0, 100)
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	if got := seqs(evs); !equalInts(got, []int64{1, 2}) {
		t.Errorf("events after rollback: got %v, want [1 2]", got)
	}
	e := &gatehouse.Event{Scope: "acme", Type: "after", Time: now()}
	update(t, s, func(tx gatehouse.Tx) error { return tx.AppendEvent(e) })
	if e.Seq != 3 {
		t.Errorf("seq of the event after a rollback: got %d, want 3", e.Seq)
	}
}
