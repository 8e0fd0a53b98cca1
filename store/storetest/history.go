package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

func testHistory(t *testing.T, s gatehouse.Store) {
	ctx := context.Background()
	createScopes(t, s, "acme", "beta")
	createDevices(t, s, newDevice("acme", "d1", nil), newDevice("acme", "d2", nil), newDevice("beta", "d1", nil))
	t0 := now()
	want := []*gatehouse.StateChange{
		{From: gatehouse.StateProvisioned, To: gatehouse.StateActive, Actor: "system", Time: t0},
		{From: gatehouse.StateActive, To: gatehouse.StateQuarantined, Actor: "token:aaaaaaaaaaaaaaaa", Reason: "odd traffic: 40 MB/h ü", Time: t0.Add(time.Minute)},
		// The same time as the previous one: order is the order of writing.
		{From: gatehouse.StateQuarantined, To: gatehouse.StateActive, Actor: "token:bbbbbbbbbbbbbbbb", Reason: "false alarm", Time: t0.Add(time.Minute)},
		{From: gatehouse.StateActive, To: gatehouse.StateDecommissioned, Actor: "system", Time: t0.Add(2 * time.Minute)},
	}
	for i, c := range want {
		update(t, s, func(tx gatehouse.Tx) error {
			if err := tx.AddStateChange("acme", "d1", c); err != nil {
				return err
			}
			// Interleave another device's and another scope's history.
			if i%2 == 0 {
				if err := tx.AddStateChange("beta", "d1", &gatehouse.StateChange{From: "a", To: "b", Actor: "other", Time: now()}); err != nil {
					return err
				}
			}
			return tx.AddStateChange("acme", "d2", &gatehouse.StateChange{From: "a", To: "b", Actor: "other", Time: now()})
		})
	}
	got, err := s.DeviceHistory(ctx, "acme", "d1")
	if err != nil {
		t.Fatalf("DeviceHistory: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DeviceHistory (-want +got):\n%s", diff)
	}
	for _, c := range got {
		checkUTC(t, "history time", &c.Time)
	}
	for _, tc := range []struct {
		scope, id string
		want      int
	}{{"acme", "d2", 4}, {"beta", "d1", 2}} {
		got, err := s.DeviceHistory(ctx, tc.scope, tc.id)
		if err != nil || len(got) != tc.want {
			t.Errorf("DeviceHistory(%s/%s): got %d entries (err %v), want %d", tc.scope, tc.id, len(got), err, tc.want)
		}
	}
}
