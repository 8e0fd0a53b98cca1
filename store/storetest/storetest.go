// Package storetest is the conformance suite every gatehouse.Store backend
// runs in full, in the spirit of testing/fstest: a backend's test calls Run
// (and Bench) with a constructor, and passes only if it behaves exactly as
// the Store contract in the root package says.
//
// The suite asks for nothing the contract leaves open. Where the contract is
// silent (the order of ListScopes and ListTokens, whether DeviceHistory of a
// deleted device is empty or ENotFound), it accepts every reasonable answer.
// It creates every scope it uses before writing into it, so a backend may
// require the scope row to exist; it never uses the scope "default", so a
// backend may create that scope in its migrations.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// NewStore returns a fresh, empty, migrated store and registers its own
// cleanup on tb. It is called once per subtest (and once per benchmark).
type NewStore func(tb testing.TB) gatehouse.Store

// Run runs the whole conformance suite against stores made by newStore.
func Run(t *testing.T, newStore NewStore) {
	t.Run("Ready", func(t *testing.T) { testReady(t, newStore(t)) })
	t.Run("Scopes", func(t *testing.T) { testScopes(t, newStore) })
	t.Run("Tokens", func(t *testing.T) { testTokens(t, newStore) })
	t.Run("Devices", func(t *testing.T) { testDevices(t, newStore) })
	t.Run("Filters", func(t *testing.T) { testFilters(t, newStore(t)) })
	t.Run("Pagination", func(t *testing.T) { testPagination(t, newStore(t)) })
	t.Run("OptimisticConcurrency", func(t *testing.T) { testOptimisticConcurrency(t, newStore(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, newStore(t)) })
	t.Run("Rollback", func(t *testing.T) { testRollback(t, newStore) })
	t.Run("Events", func(t *testing.T) { testEvents(t, newStore) })
	t.Run("History", func(t *testing.T) { testHistory(t, newStore(t)) })
	t.Run("Settings", func(t *testing.T) { testSettings(t, newStore) })
	t.Run("ErrorsKeepTxUsable", func(t *testing.T) { testErrorsKeepTxUsable(t, newStore(t)) })
	t.Run("Deferred", func(t *testing.T) { testDeferred(t, newStore) })
	t.Run("DefaultLimits", func(t *testing.T) { testDefaultLimits(t, newStore(t)) })
	t.Run("ScopeCAs", func(t *testing.T) { testScopeCAs(t, newStore) })
	t.Run("CRLs", func(t *testing.T) { testCRLs(t, newStore) })
	t.Run("Credentials", func(t *testing.T) { testCredentials(t, newStore) })
	t.Run("Enrollments", func(t *testing.T) { testEnrollments(t, newStore) })
	t.Run("Registrations", func(t *testing.T) { testRegistrations(t, newStore) })
	t.Run("DeviceBatch", func(t *testing.T) { testDeviceBatch(t, newStore) })
	t.Run("EnrollmentBatch", func(t *testing.T) { testEnrollmentBatch(t, newStore) })
	t.Run("Webhooks", func(t *testing.T) { testWebhooks(t, newStore) })
	t.Run("QueryEvents", func(t *testing.T) { testQueryEvents(t, newStore(t)) })
	t.Run("Counts", func(t *testing.T) { testCounts(t, newStore(t)) })
	t.Run("ImportJobs", func(t *testing.T) { testImportJobs(t, newStore) })
	t.Run("ImportJobLeases", func(t *testing.T) { testImportJobLeases(t, newStore) })
}

func testReady(t *testing.T, s gatehouse.Store) {
	if err := s.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: got %v, want nil", err)
	}
}

// errBoom is what a rolled-back fn returns.
var errBoom = errors.New("storetest: boom")

// now returns the current time as callers hand it to a store: UTC,
// truncated to microseconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// update runs fn in s.Update and fails the test on error.
func update(tb testing.TB, s gatehouse.Store, fn func(tx gatehouse.Tx) error) {
	tb.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		tb.Fatalf("Update: %v", err)
	}
}

// wantCode fails the test unless err carries code.
func wantCode(tb testing.TB, what string, err error, code string) {
	tb.Helper()
	if got := gatehouse.ErrorCode(err); got != code {
		tb.Errorf("%s: got code %q (err %v), want %q", what, got, err, code)
	}
}

func createScopes(tb testing.TB, s gatehouse.Store, ids ...string) {
	tb.Helper()
	update(tb, s, func(tx gatehouse.Tx) error {
		for _, id := range ids {
			if err := tx.CreateScope(&gatehouse.Scope{ID: id, CreatedAt: now()}); err != nil {
				return fmt.Errorf("create scope %s: %w", id, err)
			}
		}
		return nil
	})
}

// newDevice returns a small valid device as the registry would build it.
func newDevice(scope, id string, tags map[string]string) *gatehouse.Device {
	t := now()
	if tags == nil {
		tags = map[string]string{}
	}
	return &gatehouse.Device{
		ID:         id,
		Scope:      scope,
		State:      gatehouse.StateProvisioned,
		Connection: gatehouse.Connection{Status: gatehouse.Offline},
		Tags:       tags,
		Config:     []byte(`{}`),
		Reported:   []byte(`{}`),
		CreatedAt:  t,
		UpdatedAt:  t,
		ETag:       "1",
	}
}

func createDevices(tb testing.TB, s gatehouse.Store, ds ...*gatehouse.Device) {
	tb.Helper()
	update(tb, s, func(tx gatehouse.Tx) error {
		for _, d := range ds {
			if err := tx.CreateDevice(d); err != nil {
				return fmt.Errorf("create device %s/%s: %w", d.Scope, d.ID, err)
			}
		}
		return nil
	})
}

// getDevice reads a device through s and fails the test on error.
func getDevice(tb testing.TB, s gatehouse.Store, scope, id string) *gatehouse.Device {
	tb.Helper()
	d, err := s.GetDevice(context.Background(), scope, id)
	if err != nil {
		tb.Fatalf("GetDevice(%s, %s): %v", scope, id, err)
	}
	return d
}

// diffOpts compares stored records: times by time.Equal (cmp uses the Equal
// method), an empty tag map equal to a nil one.
var diffOpts = []cmp.Option{cmpopts.EquateEmpty()}

// checkUTC fails the test for any time not in UTC.
func checkUTC(tb testing.TB, what string, ts ...*time.Time) {
	tb.Helper()
	for _, t := range ts {
		if t != nil && t.Location() != time.UTC {
			tb.Errorf("%s: got time in %v, want UTC", what, t.Location())
		}
	}
}

// parallel runs fn(0) ... fn(n-1) in n goroutines and fails the test with
// every error they return.
func parallel(tb testing.TB, n int, fn func(i int) error) {
	tb.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tb.Errorf("goroutine %d: %v", i, err)
		}
	}
}
