package storetest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

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
		err = s.Update(ctx, func(tx gatehouse.Tx) error {
			return tx.UpdateScope(&gatehouse.Scope{ID: "nope", Policy: gatehouse.ScopePolicy{CertValidity: gatehouse.Duration(time1h)}})
		})
		wantCode(t, "UpdateScope missing", err, gatehouse.ENotFound)
	})

	t.Run("Policy", func(t *testing.T) { testScopePolicy(t, newStore(t)) })
}

// testScopePolicy: a scope's policy round-trips through CreateScope and
// UpdateScope, every field and the zero policy alike, and UpdateScope
// changes nothing else.
func testScopePolicy(t *testing.T, s gatehouse.Store) {
	ctx := context.Background()
	created := now().Add(-time1h)
	withPolicy := &gatehouse.Scope{ID: "acme", CreatedAt: created, Policy: gatehouse.ScopePolicy{
		CertValidity:   gatehouse.Duration(2160 * time.Hour),
		RenewalOverlap: gatehouse.Duration(36*time.Hour + 30*time.Minute),
		ExpiryLeadTime: gatehouse.Duration(1500 * time.Millisecond), // not a whole unit: kept exactly
		MQTT:           &gatehouse.MQTTPolicy{TopicTemplates: []string{"fleet/{scope}/{deviceId}/#", "devices/{deviceId}/#"}},
	}}
	bare := &gatehouse.Scope{ID: "bare", CreatedAt: created}
	update(t, s, func(tx gatehouse.Tx) error {
		if err := tx.CreateScope(withPolicy); err != nil {
			return err
		}
		return tx.CreateScope(bare)
	})
	check := func(what string, want ...*gatehouse.Scope) {
		t.Helper()
		for _, w := range want {
			got, err := s.GetScope(ctx, w.ID)
			if err != nil {
				t.Fatalf("%s: GetScope(%s): %v", what, w.ID, err)
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("%s: GetScope(%s) (-want +got):\n%s", what, w.ID, diff)
			}
		}
		list, err := s.ListScopes(ctx)
		if err != nil {
			t.Fatalf("%s: ListScopes: %v", what, err)
		}
		for _, w := range want {
			i := slices.IndexFunc(list, func(sc *gatehouse.Scope) bool { return sc.ID == w.ID })
			if i < 0 {
				t.Errorf("%s: ListScopes lacks %s", what, w.ID)
			} else if diff := cmp.Diff(w, list[i]); diff != "" {
				t.Errorf("%s: ListScopes entry %s (-want +got):\n%s", what, w.ID, diff)
			}
		}
	}
	check("after CreateScope", withPolicy, bare)
	if got, _ := s.GetScope(ctx, "bare"); got != nil && got.Policy != (gatehouse.ScopePolicy{}) {
		t.Errorf("scope without policy: got %+v, want the zero ScopePolicy", got.Policy)
	}

	// UpdateScope writes the policy only: a different CreatedAt in its
	// argument is ignored.
	next := &gatehouse.Scope{ID: "bare", CreatedAt: now().Add(time1h), Policy: gatehouse.ScopePolicy{CertValidity: gatehouse.Duration(5 * 365 * 24 * time.Hour)}}
	update(t, s, func(tx gatehouse.Tx) error {
		if err := tx.UpdateScope(next); err != nil {
			return err
		}
		// The Tx sees its own write.
		got, err := tx.GetScope("bare")
		if err != nil {
			return err
		}
		if got.Policy != next.Policy {
			t.Errorf("tx.GetScope after UpdateScope: got policy %+v, want %+v", got.Policy, next.Policy)
		}
		return nil
	})
	wantBare := &gatehouse.Scope{ID: "bare", CreatedAt: created, Policy: next.Policy}
	check("after UpdateScope", withPolicy, wantBare)

	// And back to the zero policy.
	cleared := &gatehouse.Scope{ID: "acme", CreatedAt: created}
	update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateScope(cleared) })
	check("after clearing the policy", cleared, wantBare)
}
