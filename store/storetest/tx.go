package storetest

import (
	"context"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

// testErrorsKeepTxUsable: an ordinary error from a Tx method (ENotFound,
// EConflict, EPreconditionFailed) leaves the transaction usable. fn handles
// each, goes on writing and returns nil; then the writes before and after
// the errors all commit. (In PostgreSQL a failed statement aborts the whole
// transaction, so a backend must detect these cases without one.)
func testErrorsKeepTxUsable(t *testing.T, s gatehouse.Store) {
	ctx := context.Background()
	createScopes(t, s, "acme")
	tok := &gatehouse.Token{ID: "aaaaaaaaaaaaaaaa", Scope: "acme", Name: "t", Role: gatehouse.RoleAdmin, Hash: []byte{1}, CreatedAt: now()}
	d1 := newDevice("acme", "d1", nil)
	update(t, s, func(tx gatehouse.Tx) error {
		if err := tx.CreateToken(tok); err != nil {
			return err
		}
		if err := tx.CreateDevice(d1); err != nil {
			return err
		}
		if err := tx.CreateCredential(newCredential("acme", "c1", "d1")); err != nil {
			return err
		}
		if err := tx.CreateEnrollment(newEnrollment("acme", "e1", gatehouse.EnrollmentGroup, gatehouse.AttestX509)); err != nil {
			return err
		}
		return tx.PutCRL(&gatehouse.CRL{Scope: "acme", Number: 5, DER: der(1, 10), ThisUpdate: now(), NextUpdate: now()})
	})

	update(t, s, func(tx gatehouse.Tx) error {
		// A write before the errors.
		if err := tx.CreateDevice(newDevice("acme", "before", nil)); err != nil {
			return err
		}
		steps := []struct {
			name string
			err  func() error
			code string
		}{
			{"CreateScope duplicate", func() error { return tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: now()}) }, gatehouse.EConflict},
			{"GetScope missing", func() error { _, err := tx.GetScope("nope"); return err }, gatehouse.ENotFound},
			{"UpdateScope missing", func() error { return tx.UpdateScope(&gatehouse.Scope{ID: "nope"}) }, gatehouse.ENotFound},
			{"CreateToken duplicate", func() error { return tx.CreateToken(tok) }, gatehouse.EConflict},
			{"RevokeToken missing", func() error { return tx.RevokeToken("zzzzzzzzzzzzzzzz", now()) }, gatehouse.ENotFound},
			{"CreateDevice duplicate", func() error { return tx.CreateDevice(newDevice("acme", "d1", nil)) }, gatehouse.EConflict},
			{"GetDevice missing", func() error { _, err := tx.GetDevice("acme", "nope"); return err }, gatehouse.ENotFound},
			{"UpdateDevice stale", func() error { return tx.UpdateDevice(newDevice("acme", "d1", nil), "stale") }, gatehouse.EPreconditionFailed},
			{"UpdateDevice missing", func() error { return tx.UpdateDevice(newDevice("acme", "nope", nil), "1") }, gatehouse.ENotFound},
			{"DeleteDevice missing", func() error { return tx.DeleteDevice("acme", "nope") }, gatehouse.ENotFound},
			{"AddStateChange missing", func() error {
				return tx.AddStateChange("acme", "nope", &gatehouse.StateChange{From: "a", To: "b", Time: now()})
			}, gatehouse.ENotFound},
			{"GetCRL missing", func() error { _, err := tx.GetCRL("nope"); return err }, gatehouse.ENotFound},
			{"PutCRL stale", func() error {
				return tx.PutCRL(&gatehouse.CRL{Scope: "acme", Number: 5, DER: der(2, 10), ThisUpdate: now(), NextUpdate: now()})
			}, gatehouse.EConflict},
			{"CreateCredential duplicate", func() error { return tx.CreateCredential(newCredential("acme", "c1", "d1")) }, gatehouse.EConflict},
			{"GetCredential missing", func() error { _, err := tx.GetCredential("acme", "nope"); return err }, gatehouse.ENotFound},
			{"UpdateCredential missing", func() error { return tx.UpdateCredential(newCredential("acme", "nope", "d1")) }, gatehouse.ENotFound},
			{"CreateEnrollment duplicate", func() error {
				return tx.CreateEnrollment(newEnrollment("acme", "e1", gatehouse.EnrollmentIndividual, gatehouse.AttestToken))
			}, gatehouse.EConflict},
			{"GetEnrollment missing", func() error { _, err := tx.GetEnrollment("acme", "nope"); return err }, gatehouse.ENotFound},
			{"UpdateEnrollment stale", func() error {
				return tx.UpdateEnrollment(newEnrollment("acme", "e1", gatehouse.EnrollmentGroup, gatehouse.AttestX509), "stale")
			}, gatehouse.EPreconditionFailed},
			{"UpdateEnrollment missing", func() error {
				return tx.UpdateEnrollment(newEnrollment("acme", "nope", gatehouse.EnrollmentGroup, gatehouse.AttestX509), "1")
			}, gatehouse.ENotFound},
			{"DeleteEnrollment missing", func() error { return tx.DeleteEnrollment("acme", "nope") }, gatehouse.ENotFound},
			{"GetRegistration missing", func() error { _, err := tx.GetRegistration("acme", "nope"); return err }, gatehouse.ENotFound},
		}
		for _, st := range steps {
			wantCode(t, st.name, st.err(), st.code)
		}
		// Writes after the errors, through each kind of statement.
		if err := tx.CreateDevice(newDevice("acme", "after", nil)); err != nil {
			return err
		}
		if err := tx.CreateCredential(newCredential("acme", "c2", "after")); err != nil {
			return err
		}
		if err := tx.CreateEnrollment(newEnrollment("acme", "e2", gatehouse.EnrollmentGroup, gatehouse.AttestX509)); err != nil {
			return err
		}
		if err := tx.PutRegistration(newRegistration("acme", "r1", "e2")); err != nil {
			return err
		}
		if err := tx.PutCRL(&gatehouse.CRL{Scope: "acme", Number: 6, DER: der(3, 10), ThisUpdate: now(), NextUpdate: now()}); err != nil {
			return err
		}
		return tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: "after", Time: now()})
	})

	for _, id := range []string{"before", "after"} {
		if _, err := s.GetDevice(ctx, "acme", id); err != nil {
			t.Errorf("GetDevice(%s): %v; a write of a tx that handled errors was lost", id, err)
		}
	}
	if _, err := s.GetCredential(ctx, "acme", "c2"); err != nil {
		t.Errorf("GetCredential(c2): %v; a write of a tx that handled errors was lost", err)
	}
	if _, err := s.GetEnrollment(ctx, "acme", "e2"); err != nil {
		t.Errorf("GetEnrollment(e2): %v; a write of a tx that handled errors was lost", err)
	}
	if _, err := s.GetRegistration(ctx, "acme", "r1"); err != nil {
		t.Errorf("GetRegistration(r1): %v; a write of a tx that handled errors was lost", err)
	}
	if got, err := s.GetEnrollment(ctx, "acme", "e1"); err != nil || got.Type != gatehouse.EnrollmentGroup {
		t.Errorf("e1 after a duplicate CreateEnrollment: got %+v (err %v), want the group", got, err)
	}
	if crl, err := s.GetCRL(ctx, "acme"); err != nil || crl.Number != 6 {
		t.Errorf("GetCRL: got %+v (err %v), want number 6", crl, err)
	}
	if evs, err := s.ListEvents(ctx, "acme", 0, 10); err != nil || len(evs) != 1 || evs[0].Seq != 1 {
		t.Errorf("ListEvents: got %d events (err %v), want one with seq 1", len(evs), err)
	}
	// And what the failed calls tried changed nothing.
	if got := getDevice(t, s, "acme", "d1"); got.ETag != d1.ETag {
		t.Errorf("d1 after a stale UpdateDevice: got etag %q, want %q", got.ETag, d1.ETag)
	}
	if _, err := s.GetScope(ctx, "nope"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
		t.Errorf("GetScope(nope): got %v, want not_found", err)
	}
}
