package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

// testDeviceBatch covers GetDevices and CreateDevices: the bulk path of
// device import.
func testDeviceBatch(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	changesFor := func(ds []*gatehouse.Device) []*gatehouse.StateChange {
		cs := make([]*gatehouse.StateChange, len(ds))
		for i, d := range ds {
			cs[i] = &gatehouse.StateChange{To: d.State, Actor: "test", Reason: "imported", Time: d.CreatedAt}
		}
		return cs
	}

	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "other")
		// More than every chunk size, with tags, so that full and
		// remainder statements both run.
		var ds []*gatehouse.Device
		for i := range 1203 {
			tags := map[string]string{"site": fmt.Sprint("s", i%7)}
			if i%2 == 0 {
				tags["even"] = "yes"
			}
			d := newDevice("acme", fmt.Sprintf("dev-%05d", i), tags)
			d.Config = []byte(fmt.Sprintf(`{"n":%d}`, i))
			ds = append(ds, d)
		}
		want := make([]*gatehouse.Device, len(ds))
		for i, d := range ds {
			want[i] = d.Clone()
		}
		update(t, s, func(tx gatehouse.Tx) error { return tx.CreateDevices(ds, changesFor(ds)) })
		for _, i := range []int{0, 63, 64, 600, 1202} {
			got := getDevice(t, s, "acme", want[i].ID)
			if diff := cmp.Diff(want[i], got, diffOpts...); diff != "" {
				t.Errorf("device %d (-want +got):\n%s", i, diff)
			}
			h, err := s.DeviceHistory(ctx, "acme", want[i].ID)
			if err != nil || len(h) != 1 || h[0].Reason != "imported" {
				t.Errorf("history of device %d: got %v, %v; want one entry", i, h, err)
			}
		}
		page, err := s.ListDevices(ctx, gatehouse.DeviceFilter{Scope: "acme", Selectors: []gatehouse.TagSelector{{Key: "site", Op: gatehouse.SelEq, Values: []string{"s3"}}}, Limit: 1000})
		if err != nil || len(page) != 172 {
			t.Errorf("tag query: got %d devices (%v), want 172", len(page), err)
		}

		update(t, s, func(tx gatehouse.Tx) error {
			ids := []string{"dev-00000", "dev-01202", "missing", "dev-00700"}
			got, err := tx.GetDevices("acme", ids)
			if err != nil {
				return err
			}
			if len(got) != 3 || got["missing"] != nil || got["dev-00700"] == nil {
				t.Errorf("GetDevices: got %d devices, want 3 without missing", len(got))
			}
			if diff := cmp.Diff(want[700], got["dev-00700"], diffOpts...); diff != "" {
				t.Errorf("GetDevices(dev-00700) (-want +got):\n%s", diff)
			}
			other, err := tx.GetDevices("other", ids)
			if err != nil || len(other) != 0 {
				t.Errorf("GetDevices in another scope: got %d, %v; want none", len(other), err)
			}
			many := make([]string, 0, 1300)
			for i := range 1300 {
				many = append(many, fmt.Sprintf("dev-%05d", i))
			}
			all, err := tx.GetDevices("acme", many)
			if err != nil || len(all) != 1203 {
				t.Errorf("GetDevices of 1300 IDs: got %d, %v; want 1203", len(all), err)
			}
			return nil
		})
	})

	t.Run("ConflictWritesNothing", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		createDevices(t, s, newDevice("acme", "taken", nil))
		ds := []*gatehouse.Device{
			newDevice("acme", "new-1", map[string]string{"a": "1"}),
			newDevice("acme", "taken", nil),
			newDevice("acme", "new-2", nil),
		}
		update(t, s, func(tx gatehouse.Tx) error {
			err := tx.CreateDevices(ds, changesFor(ds))
			wantCode(t, "CreateDevices with a taken ID", err, gatehouse.EConflict)
			// The transaction is still usable, and nothing of the batch is in it.
			if _, err := tx.GetDevice("acme", "new-1"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
				t.Errorf("new-1 after a failed batch: got %v, want not_found", err)
			}
			return tx.CreateDevices(ds[2:], changesFor(ds[2:]))
		})
		if _, err := s.GetDevice(ctx, "acme", "new-1"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("new-1 committed: got %v, want not_found", err)
		}
		getDevice(t, s, "acme", "new-2")
		got, err := s.ListDevices(ctx, gatehouse.DeviceFilter{Scope: "acme", Selectors: []gatehouse.TagSelector{{Key: "a", Op: gatehouse.SelExists}}})
		if err != nil || len(got) != 0 {
			t.Errorf("tag rows of the failed batch: got %d, %v; want none", len(got), err)
		}
	})
}
