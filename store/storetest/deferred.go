package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

// errMapped is what the tests' onErr turns a deferred write's error into.
type errMapped struct{ err error }

func (e errMapped) Error() string { return "mapped: " + e.err.Error() }
func (e errMapped) Unwrap() error { return e.err }

func mapErr(err error) error { return errMapped{err} }

// testDeferred checks gatehouse.Deferred on the backend: queued writes
// commit with the transaction and reads in it see them; a queued write that
// fails returns its own error, through onErr, at the latest from Update,
// and nothing of its transaction remains (its events and their numbers
// included). A backend without queueing passes the same checks.
func testDeferred(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	t.Run("commit and read your writes", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		e := newEnrollment("acme", "line", gatehouse.EnrollmentGroup, gatehouse.AttestSymmetricKey)
		e.MaxRegistrations = 5
		update(t, s, func(tx gatehouse.Tx) error { return tx.CreateEnrollment(e) })
		c := &gatehouse.Credential{ID: "key-1", Scope: "acme", DeviceID: "d1", Kind: gatehouse.CredentialSymmetricKey,
			Status: gatehouse.CredentialActive, Slot: "primary", CreatedAt: now()}
		reg := &gatehouse.Registration{Scope: "acme", RegistrationID: "d1", EnrollmentID: "line", DeviceID: "d1",
			Status: gatehouse.RegAssigned, Attempts: 1, CreatedAt: now(), UpdatedAt: now(), ETag: "r1"}
		ev := &gatehouse.Event{Scope: "acme", Type: gatehouse.EventDeviceCreated, Time: now(), Subject: "devices/d1"}
		update(t, s, func(tx gatehouse.Tx) error {
			w := gatehouse.Deferred(tx, mapErr)
			if err := w.CreateDevice(newDevice("acme", "d1", map[string]string{"site": "a"})); err != nil {
				return err
			}
			if err := w.AddStateChange("acme", "d1", &gatehouse.StateChange{To: gatehouse.StateProvisioned, Actor: "t", Time: now()}); err != nil {
				return err
			}
			if err := w.CreateCredential(c); err != nil {
				return err
			}
			if err := w.PutRegistration(reg); err != nil {
				return err
			}
			if err := w.CountEnrollmentUse(gatehouse.EnrollmentUse{Scope: "acme", ID: "line", ETag: e.ETag, Registrations: 1, MaxRegistrations: 5}); err != nil {
				return err
			}
			if err := tx.AppendEvent(ev); err != nil {
				return err
			}
			// Reads in the transaction, through the view or tx, see the
			// queued writes.
			if d, err := w.GetDevice("acme", "d1"); err != nil || d.Tags["site"] != "a" {
				return fmt.Errorf("GetDevice after a deferred CreateDevice: got %+v, %v", d, err)
			}
			got, err := tx.GetCredential("acme", "key-1")
			if err != nil {
				return fmt.Errorf("GetCredential after a deferred CreateCredential: %w", err)
			}
			got.Status = gatehouse.CredentialRevoked
			return w.UpdateCredential(got)
		})
		if d := getDevice(t, s, "acme", "d1"); d.Tags["site"] != "a" {
			t.Errorf("device tags %v, want site=a", d.Tags)
		}
		if h, err := s.DeviceHistory(ctx, "acme", "d1"); err != nil || len(h) != 1 {
			t.Errorf("history: got %d changes (%v), want 1", len(h), err)
		}
		if got, err := s.GetCredential(ctx, "acme", "key-1"); err != nil || got.Status != gatehouse.CredentialRevoked {
			t.Errorf("credential: got %+v, %v; want it revoked", got, err)
		}
		if got, err := s.GetRegistration(ctx, "acme", "d1"); err != nil || got.ETag != "r1" {
			t.Errorf("registration: got %+v, %v", got, err)
		}
		if got, err := s.GetEnrollment(ctx, "acme", "line"); err != nil || got.Registrations != 1 {
			t.Errorf("enrollment: got %+v, %v; want 1 registration", got, err)
		}
		if ev.Seq != 1 {
			t.Errorf("event seq %d, want 1", ev.Seq)
		}
	})

	// Each case queues a write that fails, after other writes; fn goes on
	// as if the write had succeeded, and returns what its later calls say.
	type failing struct {
		name string
		code string // of the unmapped error
		// write makes the failing write through w.
		write func(w gatehouse.Tx) error
	}
	cases := []failing{
		{"CreateDevice duplicate", gatehouse.EConflict, func(w gatehouse.Tx) error {
			return w.CreateDevice(newDevice("acme", "taken", nil))
		}},
		{"CreateCredential duplicate", gatehouse.EConflict, func(w gatehouse.Tx) error {
			return w.CreateCredential(&gatehouse.Credential{ID: "cred-taken", Scope: "acme", DeviceID: "taken",
				Kind: gatehouse.CredentialToken, Status: gatehouse.CredentialActive, CreatedAt: now()})
		}},
		{"AddStateChange missing device", gatehouse.ENotFound, func(w gatehouse.Tx) error {
			return w.AddStateChange("acme", "nope", &gatehouse.StateChange{To: gatehouse.StateActive, Time: now()})
		}},
		{"UpdateCredential missing", gatehouse.ENotFound, func(w gatehouse.Tx) error {
			return w.UpdateCredential(&gatehouse.Credential{ID: "nope", Scope: "acme", Status: gatehouse.CredentialRevoked})
		}},
		{"UpdateDevice stale", gatehouse.EPreconditionFailed, func(w gatehouse.Tx) error {
			return w.UpdateDevice(newDevice("acme", "taken", nil), "stale")
		}},
		{"CountEnrollmentUse stale", gatehouse.EPreconditionFailed, func(w gatehouse.Tx) error {
			return w.CountEnrollmentUse(gatehouse.EnrollmentUse{Scope: "acme", ID: "line", ETag: "stale", Registrations: 1})
		}},
		{"CountEnrollmentUse full", gatehouse.EQuotaExceeded, func(w gatehouse.Tx) error {
			return w.CountEnrollmentUse(gatehouse.EnrollmentUse{Scope: "acme", ID: "full", ETag: "e-full", Registrations: 1, MaxRegistrations: 1})
		}},
		{"CountEnrollmentUse missing", gatehouse.ENotFound, func(w gatehouse.Tx) error {
			return w.CountEnrollmentUse(gatehouse.EnrollmentUse{Scope: "acme", ID: "nope", ETag: "x", Uses: 1})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			createScopes(t, s, "acme")
			full := newEnrollment("acme", "full", gatehouse.EnrollmentGroup, gatehouse.AttestSymmetricKey)
			full.ETag, full.Registrations, full.MaxRegistrations = "e-full", 1, 1
			update(t, s, func(tx gatehouse.Tx) error {
				if err := tx.CreateDevice(newDevice("acme", "taken", nil)); err != nil {
					return err
				}
				if err := tx.CreateCredential(&gatehouse.Credential{ID: "cred-taken", Scope: "acme", DeviceID: "taken",
					Kind: gatehouse.CredentialToken, Status: gatehouse.CredentialActive, CreatedAt: now()}); err != nil {
					return err
				}
				if err := tx.CreateEnrollment(newEnrollment("acme", "line", gatehouse.EnrollmentGroup, gatehouse.AttestSymmetricKey)); err != nil {
					return err
				}
				return tx.CreateEnrollment(full)
			})
			lost := &gatehouse.Event{Scope: "acme", Type: "lost", Time: now()}
			var later error // what fn's calls after the failing write said
			err := s.Update(ctx, func(tx gatehouse.Tx) error {
				// Written at once, before: must not survive either.
				if err := tx.CreateDevice(newDevice("acme", "before", nil)); err != nil {
					return err
				}
				w := gatehouse.Deferred(tx, mapErr)
				if err := w.CreateDevice(newDevice("acme", "queued", nil)); err != nil {
					return err
				}
				if err := tx.AppendEvent(lost); err != nil {
					return err
				}
				if err := tc.write(w); err != nil {
					return err // a backend that does not queue says so here
				}
				if err := w.PutRegistration(&gatehouse.Registration{Scope: "acme", RegistrationID: "after", Status: gatehouse.RegAssigned,
					CreatedAt: now(), UpdatedAt: now(), ETag: "r"}); err != nil {
					later = err
					return err
				}
				// A read sends the queue: it may report the failure.
				if _, err := tx.GetScope("acme"); err != nil {
					later = err
					return err
				}
				return nil
			})
			var m errMapped
			if !errors.As(err, &m) {
				t.Fatalf("Update: got %v, want the failing write's error through onErr", err)
			}
			wantCode(t, "Update's error", err, tc.code)
			if later != nil && !errors.As(later, &m) {
				t.Errorf("a later call in the transaction said %v, not the failing write's error", later)
			}
			for _, id := range []string{"before", "queued"} {
				if _, err := s.GetDevice(ctx, "acme", id); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
					t.Errorf("device %q of the failed transaction: got %v, want not_found", id, err)
				}
			}
			if _, err := s.GetRegistration(ctx, "acme", "after"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
				t.Errorf("registration of the failed transaction: got %v, want not_found", err)
			}
			if got, err := s.GetEnrollment(ctx, "acme", "full"); err != nil || got.Registrations != 1 {
				t.Errorf("enrollment full: got %+v, %v; want its count unchanged (1)", got, err)
			}
			if evs, err := s.ListEvents(ctx, "acme", 0, 0); err != nil || len(evs) != 0 {
				t.Errorf("events: got %d (%v), want none", len(evs), err)
			}
			// The store goes on: the next transaction commits, and its
			// event takes the first number.
			next := &gatehouse.Event{Scope: "acme", Type: "next", Time: now()}
			update(t, s, func(tx gatehouse.Tx) error {
				if err := gatehouse.Deferred(tx, mapErr).CreateDevice(newDevice("acme", "next", nil)); err != nil {
					return err
				}
				return tx.AppendEvent(next)
			})
			getDevice(t, s, "acme", "next")
			if next.Seq != 1 {
				t.Errorf("the next event took seq %d, want 1", next.Seq)
			}
		})
	}
}
