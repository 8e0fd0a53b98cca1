package storetest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

func testScopes(t *testing.T, newStore NewStore) {
	ctx := context.Background()

	t.Run("CreateGetList", func(t *testing.T) {
		s := newStore(t)
		want := []*gatehouse.Scope{
			{ID: "acme", CreatedAt: now()},
			{ID: "beta-corp", CreatedAt: now().Add(-time1h)},
			{ID: "zeta", CreatedAt: now()},
		}
		update(t, s, func(tx gatehouse.Tx) error {
			for _, sc := range want {
				if err := tx.CreateScope(sc); err != nil {
					return err
				}
			}
			// A Tx sees its own writes.
			got, err := tx.GetScope("beta-corp")
			if err != nil {
				t.Errorf("tx.GetScope in the creating tx: %v", err)
			} else if diff := cmp.Diff(want[1], got); diff != "" {
				t.Errorf("tx.GetScope in the creating tx (-want +got):\n%s", diff)
			}
			return nil
		})
		for _, w := range want {
			got, err := s.GetScope(ctx, w.ID)
			if err != nil {
				t.Fatalf("GetScope(%s): %v", w.ID, err)
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("GetScope(%s) (-want +got):\n%s", w.ID, diff)
			}
			checkUTC(t, "GetScope.CreatedAt", &got.CreatedAt)
		}
		list, err := s.ListScopes(ctx)
		if err != nil {
			t.Fatalf("ListScopes: %v", err)
		}
		// A backend may create the default scope on its own.
		list = slices.DeleteFunc(list, func(sc *gatehouse.Scope) bool { return sc.ID == gatehouse.DefaultScope })
		slices.SortFunc(list, func(a, b *gatehouse.Scope) int { return strings.Compare(a.ID, b.ID) })
		if diff := cmp.Diff(want, list); diff != "" {
			t.Errorf("ListScopes (-want +got):\n%s", diff)
		}
	})

	t.Run("Duplicate", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		err := s.Update(ctx, func(tx gatehouse.Tx) error {
			return tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: now()})
		})
		wantCode(t, "CreateScope duplicate", err, gatehouse.EConflict)
	})

	t.Run("Missing", func(t *testing.T) {
		s := newStore(t)
		_, err := s.GetScope(ctx, "nope")
		wantCode(t, "GetScope missing", err, gatehouse.ENotFound)
		err = s.Update(ctx, func(tx gatehouse.Tx) error {
			_, err := tx.GetScope("nope")
			return err
		})
		wantCode(t, "tx.GetScope missing", err, gatehouse.ENotFound)
	})
}
