package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

func testDevices(t *testing.T, newStore NewStore) {
	ctx := context.Background()

	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		seen := now().Add(-3 * time.Minute)
		full := &gatehouse.Device{
			ID:    "sensor-01.a_b:c",
			Scope: "acme",
			State: gatehouse.StateActive,
			Connection: gatehouse.Connection{
				Status:   gatehouse.Online,
				LastSeen: &seen,
			},
			Tags: map[string]string{"env": "prod", "site/floor": "3", "empty": "", "name": "Halle ü 7"},
			// Not in key order and with escapes: the store keeps the bytes it
			// was given, it does not re-encode JSON.
			Config:     json.RawMessage(`{"z":1,"a":{"y":[1,2.50,1e3],"x":null},"s":"h\u00e9 \"q\""}`),
			Reported:   json.RawMessage(`{"fw":"1.2.3","uptime":12345678901234}`),
			Enrollment: "enr-factory-7",
			CreatedAt:  now().Add(-time.Hour),
			UpdatedAt:  now(),
			ETag:       "W/\"abc123\"",
		}
		minimal := newDevice("acme", "bare", nil)
		for _, d := range []*gatehouse.Device{full, minimal} {
			want := d.Clone()
			createDevices(t, s, d)
			got := getDevice(t, s, d.Scope, d.ID)
			if diff := cmp.Diff(want, got, diffOpts...); diff != "" {
				t.Errorf("GetDevice(%s) (-want +got):\n%s", d.ID, diff)
			}
			if string(got.Config) != string(want.Config) {
				t.Errorf("Config: got %s, want %s", got.Config, want.Config)
			}
			if string(got.Reported) != string(want.Reported) {
				t.Errorf("Reported: got %s, want %s", got.Reported, want.Reported)
			}
			checkUTC(t, "device "+d.ID, &got.CreatedAt, &got.UpdatedAt, got.Connection.LastSeen)
			if (got.Connection.LastSeen == nil) != (want.Connection.LastSeen == nil) {
				t.Errorf("LastSeen: got %v, want %v", got.Connection.LastSeen, want.Connection.LastSeen)
			}
			// Through a Tx as well.
			update(t, s, func(tx gatehouse.Tx) error {
				got, err := tx.GetDevice(d.Scope, d.ID)
				if err != nil {
					return err
				}
				if diff := cmp.Diff(want, got, diffOpts...); diff != "" {
					t.Errorf("tx.GetDevice(%s) (-want +got):\n%s", d.ID, diff)
				}
				return nil
			})
		}
	})

	t.Run("Duplicate", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		createDevices(t, s, newDevice("acme", "d1", nil))
		err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateDevice(newDevice("acme", "d1", nil)) })
		wantCode(t, "CreateDevice duplicate", err, gatehouse.EConflict)
		// The same ID in another scope is another device.
		other := newDevice("beta", "d1", map[string]string{"k": "beta"})
		createDevices(t, s, other)
		if got := getDevice(t, s, "beta", "d1"); got.Tags["k"] != "beta" {
			t.Errorf("beta/d1 tag k: got %q, want %q", got.Tags["k"], "beta")
		}
		if got := getDevice(t, s, "acme", "d1"); got.Tags["k"] != "" {
			t.Errorf("acme/d1 tag k: got %q, want %q", got.Tags["k"], "")
		}
	})

	t.Run("Missing", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		createDevices(t, s, newDevice("acme", "d1", nil))
		for _, tc := range []struct{ scope, id string }{{"acme", "d2"}, {"beta", "d1"}, {"nope", "d1"}} {
			_, err := s.GetDevice(ctx, tc.scope, tc.id)
			wantCode(t, "GetDevice "+tc.scope+"/"+tc.id, err, gatehouse.ENotFound)
			err = s.Update(ctx, func(tx gatehouse.Tx) error {
				_, err := tx.GetDevice(tc.scope, tc.id)
				return err
			})
			wantCode(t, "tx.GetDevice "+tc.scope+"/"+tc.id, err, gatehouse.ENotFound)
		}
	})

	t.Run("Update", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		d := newDevice("acme", "d1", map[string]string{"a": "1", "b": "2"})
		createDevices(t, s, d)

		seen := now()
		next := d.Clone()
		next.State = gatehouse.StateActive
		next.Connection = gatehouse.Connection{Status: gatehouse.Online, LastSeen: &seen}
		next.Tags = map[string]string{"b": "3", "c": "4"}
		next.Config = json.RawMessage(`{"interval":30}`)
		next.Reported = json.RawMessage(`{"fw":"2"}`)
		next.Enrollment = "enr-2"
		next.UpdatedAt = now().Add(time.Second)
		next.ETag = "2"
		want := next.Clone()
		update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateDevice(next, "1") })
		got := getDevice(t, s, "acme", "d1")
		if diff := cmp.Diff(want, got, diffOpts...); diff != "" {
			t.Errorf("after UpdateDevice (-want +got):\n%s", diff)
		}
		// The filters see the new tags, not the old ones.
		for _, tc := range []struct {
			sel  gatehouse.TagSelector
			want int
		}{
			{gatehouse.TagSelector{Key: "a", Op: gatehouse.SelExists}, 0},
			{gatehouse.TagSelector{Key: "b", Op: gatehouse.SelEq, Values: []string{"2"}}, 0},
			{gatehouse.TagSelector{Key: "b", Op: gatehouse.SelEq, Values: []string{"3"}}, 1},
			{gatehouse.TagSelector{Key: "c", Op: gatehouse.SelExists}, 1},
		} {
			list, err := s.ListDevices(ctx, gatehouse.DeviceFilter{Scope: "acme", Selectors: []gatehouse.TagSelector{tc.sel}, Limit: 10})
			if err != nil {
				t.Fatalf("ListDevices: %v", err)
			}
			if len(list) != tc.want {
				t.Errorf("ListDevices %v after update: got %d devices, want %d", tc.sel, len(list), tc.want)
			}
		}

		// Then back to nil LastSeen and no tags.
		again := got.Clone()
		again.Connection = gatehouse.Connection{Status: gatehouse.Offline}
		again.Tags = map[string]string{}
		again.ETag = "3"
		update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateDevice(again, "2") })
		got = getDevice(t, s, "acme", "d1")
		if diff := cmp.Diff(again, got, diffOpts...); diff != "" {
			t.Errorf("after second UpdateDevice (-want +got):\n%s", diff)
		}

		stale := got.Clone()
		stale.ETag = "4"
		err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.UpdateDevice(stale, "2") })
		wantCode(t, "UpdateDevice stale etag", err, gatehouse.EPreconditionFailed)

		missing := newDevice("acme", "nope", nil)
		err = s.Update(ctx, func(tx gatehouse.Tx) error { return tx.UpdateDevice(missing, "1") })
		wantCode(t, "UpdateDevice missing", err, gatehouse.ENotFound)
	})

	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		d := newDevice("acme", "d1", map[string]string{"env": "prod"})
		keep := newDevice("acme", "d2", map[string]string{"env": "prod"})
		twin := newDevice("beta", "d1", map[string]string{"env": "prod"})
		createDevices(t, s, d, keep, twin)
		update(t, s, func(tx gatehouse.Tx) error {
			for _, x := range []*gatehouse.Device{d, keep, twin} {
				c := &gatehouse.StateChange{From: gatehouse.StateProvisioned, To: gatehouse.StateActive, Actor: "system", Time: now()}
				if err := tx.AddStateChange(x.Scope, x.ID, c); err != nil {
					return err
				}
			}
			return nil
		})
		update(t, s, func(tx gatehouse.Tx) error { return tx.DeleteDevice("acme", "d1") })

		_, err := s.GetDevice(ctx, "acme", "d1")
		wantCode(t, "GetDevice after delete", err, gatehouse.ENotFound)
		if h, err := s.DeviceHistory(ctx, "acme", "d1"); err != nil && gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("DeviceHistory after delete: got %v, want nil or not_found", err)
		} else if len(h) != 0 {
			t.Errorf("DeviceHistory after delete: got %d entries, want 0", len(h))
		}
		list, err := s.ListDevices(ctx, gatehouse.DeviceFilter{Scope: "acme", Selectors: []gatehouse.TagSelector{{Key: "env", Op: gatehouse.SelEq, Values: []string{"prod"}}}, Limit: 10})
		if err != nil {
			t.Fatalf("ListDevices: %v", err)
		}
		if len(list) != 1 || list[0].ID != "d2" {
			t.Errorf("ListDevices env=prod after delete: got %v, want [d2]", ids(list))
		}
		// The twin in another scope and its history are untouched.
		getDevice(t, s, "beta", "d1")
		if h, err := s.DeviceHistory(ctx, "beta", "d1"); err != nil || len(h) != 1 {
			t.Errorf("DeviceHistory(beta/d1): got %d entries (err %v), want 1", len(h), err)
		}
		// Re-creating the ID starts a fresh record with no history.
		createDevices(t, s, newDevice("acme", "d1", nil))
		if h, err := s.DeviceHistory(ctx, "acme", "d1"); err != nil || len(h) != 0 {
			t.Errorf("DeviceHistory of re-created device: got %d entries (err %v), want 0", len(h), err)
		}

		err = s.Update(ctx, func(tx gatehouse.Tx) error { return tx.DeleteDevice("acme", "nope") })
		wantCode(t, "DeleteDevice missing", err, gatehouse.ENotFound)
	})
}

func ids(ds []*gatehouse.Device) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}
