package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

func testCRLs(t *testing.T, newStore NewStore) {
	ctx := context.Background()

	t.Run("Monotonic", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		_, err := s.GetCRL(ctx, "acme")
		wantCode(t, "GetCRL before any", err, gatehouse.ENotFound)
		err = s.Update(ctx, func(tx gatehouse.Tx) error { _, err := tx.GetCRL("acme"); return err })
		wantCode(t, "tx.GetCRL before any", err, gatehouse.ENotFound)

		t0 := now()
		first := &gatehouse.CRL{Scope: "acme", Number: 1, DER: der(3, 900), ThisUpdate: t0, NextUpdate: t0.Add(24 * time.Hour)}
		update(t, s, func(tx gatehouse.Tx) error {
			if err := tx.PutCRL(first); err != nil {
				return err
			}
			got, err := tx.GetCRL("acme")
			if err != nil {
				return err
			}
			if diff := cmp.Diff(first, got); diff != "" {
				t.Errorf("tx.GetCRL in the writing tx (-want +got):\n%s", diff)
			}
			return nil
		})
		getCRL := func() *gatehouse.CRL {
			t.Helper()
			got, err := s.GetCRL(ctx, "acme")
			if err != nil {
				t.Fatalf("GetCRL: %v", err)
			}
			checkUTC(t, "CRL times", &got.ThisUpdate, &got.NextUpdate)
			return got
		}
		if diff := cmp.Diff(first, getCRL()); diff != "" {
			t.Errorf("GetCRL (-want +got):\n%s", diff)
		}

		// An equal or lower number is a conflict and changes nothing.
		for _, n := range []int64{1, 0, -1} {
			stale := &gatehouse.CRL{Scope: "acme", Number: n, DER: der(4, 10), ThisUpdate: t0.Add(time.Hour), NextUpdate: t0.Add(48 * time.Hour)}
			err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.PutCRL(stale) })
			wantCode(t, fmt.Sprintf("PutCRL with number %d after 1", n), err, gatehouse.EConflict)
			if diff := cmp.Diff(first, getCRL()); diff != "" {
				t.Errorf("GetCRL after PutCRL(number %d) (-want +got):\n%s", n, diff)
			}
		}

		// Numbers may skip; each scope has its own.
		later := &gatehouse.CRL{Scope: "acme", Number: 7, DER: der(5, 1200), ThisUpdate: t0.Add(time.Hour), NextUpdate: t0.Add(25 * time.Hour)}
		other := &gatehouse.CRL{Scope: "beta", Number: 1, DER: der(6, 20), ThisUpdate: t0, NextUpdate: t0.Add(time.Hour)}
		update(t, s, func(tx gatehouse.Tx) error {
			if err := tx.PutCRL(later); err != nil {
				return err
			}
			return tx.PutCRL(other)
		})
		if diff := cmp.Diff(later, getCRL()); diff != "" {
			t.Errorf("GetCRL after a higher number (-want +got):\n%s", diff)
		}
		if got, err := s.GetCRL(ctx, "beta"); err != nil || got.Number != 1 {
			t.Errorf("GetCRL(beta): got %+v (err %v), want number 1", got, err)
		}
	})

	// Many writers each read the CRL and store number+1 in one Update: the
	// lock taken by tx.GetCRL serialises them, so none is lost.
	t.Run("ConcurrentIncrements", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		update(t, s, func(tx gatehouse.Tx) error {
			return tx.PutCRL(&gatehouse.CRL{Scope: "acme", Number: 1, DER: der(1, 100), ThisUpdate: now(), NextUpdate: now()})
		})
		const n, m = 16, 10
		parallel(t, n, func(int) error {
			for range m {
				err := s.Update(ctx, func(tx gatehouse.Tx) error {
					cur, err := tx.GetCRL("acme")
					if err != nil {
						return err
					}
					return tx.PutCRL(&gatehouse.CRL{Scope: "acme", Number: cur.Number + 1, DER: der(byte(cur.Number), 100), ThisUpdate: now(), NextUpdate: now()})
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		got, err := s.GetCRL(ctx, "acme")
		if err != nil {
			t.Fatalf("GetCRL: %v", err)
		}
		if want := int64(1 + n*m); got.Number != want {
			t.Errorf("CRL number: got %d, want %d (updates were lost)", got.Number, want)
		}
		if want := der(byte(got.Number-1), 100); !bytes.Equal(got.DER, want) {
			t.Errorf("CRL DER is not the one written with the final number")
		}
	})

	// Writers racing to store the first CRL: one wins, the others get
	// EConflict (without aborting their transactions).
	t.Run("ConcurrentFirst", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		const n = 16
		errs := make([]error, n)
		parallel(t, n, func(i int) error {
			errs[i] = s.Update(ctx, func(tx gatehouse.Tx) error {
				return tx.PutCRL(&gatehouse.CRL{Scope: "acme", Number: 1, DER: der(byte(i), 10), ThisUpdate: now(), NextUpdate: now()})
			})
			return nil
		})
		won := 0
		for i, err := range errs {
			switch gatehouse.ErrorCode(err) {
			case "":
				won++
			case gatehouse.EConflict:
			default:
				t.Errorf("writer %d: got %v, want nil or conflict", i, err)
			}
		}
		if won != 1 {
			t.Errorf("writers that stored CRL 1: got %d, want 1", won)
		}
	})
}
