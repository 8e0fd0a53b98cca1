package storetest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

// newRegistration returns the record of a successful first registration.
func newRegistration(scope, registrationID, enrollmentID string) *gatehouse.Registration {
	t := now()
	return &gatehouse.Registration{
		Scope: scope, RegistrationID: registrationID, EnrollmentID: enrollmentID, DeviceID: registrationID,
		OperationID: "op-" + registrationID, Status: gatehouse.RegAssigned, Substatus: gatehouse.SubInitialAssignment,
		AssignedHub: "mqtt.example.com", Attempts: 1, CreatedAt: t, UpdatedAt: t, ETag: "1",
	}
}

func getRegistration(tb testing.TB, s gatehouse.Store, scope, id string) *gatehouse.Registration {
	tb.Helper()
	r, err := s.GetRegistration(context.Background(), scope, id)
	if err != nil {
		tb.Fatalf("GetRegistration(%s, %s): %v", scope, id, err)
	}
	checkUTC(tb, "registration "+id, &r.CreatedAt, &r.UpdatedAt)
	return r
}

func testRegistrations(t *testing.T, newStore NewStore) {
	ctx := context.Background()

	t.Run("PutGet", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		t0 := now()
		zone := time.FixedZone("UTC+9", 9*3600)
		full := &gatehouse.Registration{
			Scope: "acme", RegistrationID: "sensor-01", EnrollmentID: "group-1", DeviceID: "dev-sensor-01",
			OperationID: "4.d0e1f2a3b4c5d6e7.0f1e2d3c", Status: gatehouse.RegFailed, Substatus: gatehouse.SubDeviceDataReset,
			AssignedHub: "b.example.com:8883", ErrorCode: gatehouse.EWebhookDenied, ErrorMessage: "the webhook said \"no\" <é>",
			Attempts: 1 << 40, CreatedAt: t0.Add(-time.Hour).In(zone), UpdatedAt: t0, ETag: "etag-1",
		}
		minimal := &gatehouse.Registration{Scope: "acme", RegistrationID: "r2", Status: gatehouse.RegAssigning, CreatedAt: t0, UpdatedAt: t0}
		for _, r := range []*gatehouse.Registration{full, minimal} {
			want := *r
			want.CreatedAt = want.CreatedAt.UTC()
			update(t, s, func(tx gatehouse.Tx) error {
				if err := tx.PutRegistration(r); err != nil {
					return err
				}
				got, err := tx.GetRegistration(r.Scope, r.RegistrationID)
				if err != nil {
					return err
				}
				if diff := cmp.Diff(&want, got); diff != "" {
					t.Errorf("tx.GetRegistration(%s) in the putting tx (-want +got):\n%s", r.RegistrationID, diff)
				}
				return nil
			})
			if diff := cmp.Diff(&want, getRegistration(t, s, r.Scope, r.RegistrationID)); diff != "" {
				t.Errorf("GetRegistration(%s) (-want +got):\n%s", r.RegistrationID, diff)
			}
		}

		// Put again replaces every field, CreatedAt included.
		re := newRegistration("acme", "sensor-01", "group-2")
		re.DeviceID, re.Attempts, re.ETag, re.CreatedAt = "dev-2", 2, "etag-2", t0.Add(time.Minute)
		want := *re
		update(t, s, func(tx gatehouse.Tx) error { return tx.PutRegistration(re) })
		if diff := cmp.Diff(&want, getRegistration(t, s, "acme", "sensor-01")); diff != "" {
			t.Errorf("after replacing (-want +got):\n%s", diff)
		}
		// Back to empty strings.
		cleared := want
		cleared.Substatus, cleared.AssignedHub, cleared.ErrorCode, cleared.ErrorMessage, cleared.DeviceID = "", "", "", "", ""
		update(t, s, func(tx gatehouse.Tx) error { return tx.PutRegistration(&cleared) })
		if diff := cmp.Diff(&cleared, getRegistration(t, s, "acme", "sensor-01")); diff != "" {
			t.Errorf("after clearing (-want +got):\n%s", diff)
		}

		// The same registration ID in another scope is another record.
		other := newRegistration("beta", "sensor-01", "beta-group")
		update(t, s, func(tx gatehouse.Tx) error { return tx.PutRegistration(other) })
		if got := getRegistration(t, s, "beta", "sensor-01"); got.EnrollmentID != "beta-group" {
			t.Errorf("beta/sensor-01: got enrollment %q, want beta-group", got.EnrollmentID)
		}
		if got := getRegistration(t, s, "acme", "sensor-01"); got.EnrollmentID != "group-2" {
			t.Errorf("acme/sensor-01 after putting beta's: got enrollment %q, want group-2", got.EnrollmentID)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		update(t, s, func(tx gatehouse.Tx) error { return tx.PutRegistration(newRegistration("acme", "r1", "e1")) })
		for _, tc := range []struct{ scope, id string }{{"acme", "r2"}, {"beta", "r1"}, {"nope", "r1"}} {
			_, err := s.GetRegistration(ctx, tc.scope, tc.id)
			wantCode(t, "GetRegistration "+tc.scope+"/"+tc.id, err, gatehouse.ENotFound)
			err = s.Update(ctx, func(tx gatehouse.Tx) error {
				_, err := tx.GetRegistration(tc.scope, tc.id)
				return err
			})
			wantCode(t, "tx.GetRegistration "+tc.scope+"/"+tc.id, err, gatehouse.ENotFound)
		}
	})

	// The provisioning flow's transaction: it locks the enrollment and the
	// registration ID, reads them again, and writes both. Locks taken twice
	// by one transaction must not wait for themselves. The context's
	// deadline turns a backend that does into a failure instead of a hang.
	t.Run("LocksInOneTx", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		createEnrollments(t, s, newEnrollment("acme", "e1", gatehouse.EnrollmentGroup, gatehouse.AttestSymmetricKey))
		tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		err := s.Update(tctx, func(tx gatehouse.Tx) error {
			e, err := tx.GetEnrollment("acme", "e1")
			if err != nil {
				return err
			}
			if _, err := tx.GetEnrollment("acme", "e1"); err != nil {
				return err
			}
			for range 2 {
				if _, err := tx.GetRegistration("acme", "r1"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
					t.Errorf("tx.GetRegistration before any record: got %v, want not_found", err)
				}
			}
			if err := tx.PutRegistration(newRegistration("acme", "r1", "e1")); err != nil {
				return err
			}
			r, err := tx.GetRegistration("acme", "r1")
			if err != nil {
				return err
			}
			r.Attempts++
			if err := tx.PutRegistration(r); err != nil {
				return err
			}
			if r, err := tx.GetRegistration("acme", "r1"); err != nil || r.Attempts != 2 {
				t.Errorf("tx.GetRegistration after two puts: got %+v (err %v), want 2 attempts", r, err)
			}
			prev := e.ETag
			e.Registrations, e.ETag = 1, "2"
			if err := tx.UpdateEnrollment(e, prev); err != nil {
				return err
			}
			_, err = tx.GetEnrollment("acme", "e1")
			return err
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if got := getRegistration(t, s, "acme", "r1"); got.Attempts != 2 {
			t.Errorf("registration: got %d attempts, want 2", got.Attempts)
		}
		if got := getEnrollment(t, s, "acme", "e1"); got.Registrations != 1 || got.ETag != "2" {
			t.Errorf("enrollment: got registrations %d etag %q, want 1 2", got.Registrations, got.ETag)
		}
	})

	// Read-modify-write of one registration record from many goroutines,
	// starting before the record exists: GetRegistration locks the ID
	// either way, so no attempt is lost and exactly one creates the record.
	t.Run("ConcurrentPuts", func(t *testing.T) {
		const n = 24
		s := newStore(t)
		createScopes(t, s, "acme")
		start := make(chan struct{})
		go func() { time.Sleep(10 * time.Millisecond); close(start) }()
		parallel(t, n, func(i int) error {
			<-start
			return s.Update(ctx, func(tx gatehouse.Tx) error {
				r, err := tx.GetRegistration("acme", "device-1")
				if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
					// Wait with the lock held, so that a backend which
					// locks nothing for a missing record lets the others
					// find none too. With the lock, only the first waits.
					time.Sleep(50 * time.Millisecond)
					r = newRegistration("acme", "device-1", "e1")
					r.Attempts, r.OperationID = 0, "first-"+strconv.Itoa(i)
				} else if err != nil {
					return err
				}
				r.Attempts++
				r.ETag = strconv.Itoa(r.Attempts)
				return tx.PutRegistration(r)
			})
		})
		got := getRegistration(t, s, "acme", "device-1")
		if got.Attempts != n || got.ETag != strconv.Itoa(n) {
			t.Errorf("after %d read-modify-writes: got %d attempts etag %q, want %d", n, got.Attempts, got.ETag, n)
		}
	})

	// Both at once, as provisioning does: the enrollment's counter and one
	// record per device, from many goroutines.
	t.Run("ConcurrentProvisioning", func(t *testing.T) {
		const n = 24
		s := newStore(t)
		createScopes(t, s, "acme")
		e := newEnrollment("acme", "group", gatehouse.EnrollmentGroup, gatehouse.AttestSymmetricKey)
		createEnrollments(t, s, e)
		parallel(t, n, func(i int) error {
			id := "device-" + strconv.Itoa(i%4)
			return s.Update(ctx, func(tx gatehouse.Tx) error {
				e, err := tx.GetEnrollment("acme", "group")
				if err != nil {
					return err
				}
				r, err := tx.GetRegistration("acme", id)
				if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
					r = newRegistration("acme", id, "group")
					r.Attempts = 0
				} else if err != nil {
					return err
				}
				r.Attempts++
				if err := tx.PutRegistration(r); err != nil {
					return err
				}
				prev := e.ETag
				e.Registrations++
				e.ETag = strconv.Itoa(e.Registrations + 1)
				return tx.UpdateEnrollment(e, prev)
			})
		})
		if got := getEnrollment(t, s, "acme", "group"); got.Registrations != n {
			t.Errorf("enrollment after %d registrations: got %d", n, got.Registrations)
		}
		for i := range 4 {
			if got := getRegistration(t, s, "acme", "device-"+strconv.Itoa(i)); got.Attempts != n/4 {
				t.Errorf("device-%d: got %d attempts, want %d", i, got.Attempts, n/4)
			}
		}
	})
}
