package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

// dataset returns n devices of scope with varied states, connections and tags,
// the same for every run.
func dataset(scope string, n int, seed uint64) []*gatehouse.Device {
	r := rand.New(rand.NewPCG(seed, 7))
	base := now()
	pick := func(vals ...string) string { return vals[r.IntN(len(vals))] }
	ds := make([]*gatehouse.Device, 0, n)
	for i := range n {
		tags := map[string]string{}
		if r.IntN(5) > 0 {
			tags["env"] = pick("prod", "staging", "dev")
		}
		if r.IntN(3) > 0 {
			tags["region"] = pick("eu-west", "us-east", "ap-south", "")
		}
		if r.IntN(2) == 0 {
			tags["fw"] = pick("1.0", "1.1", "2.0")
		}
		if r.IntN(10) == 0 {
			tags["canary"] = "true"
		}
		tags[fmt.Sprintf("slot-%d", i%7)] = pick("a", "b")
		d := newDevice(scope, fmt.Sprintf("dev-%04d", i), tags)
		d.State = gatehouse.States[r.IntN(len(gatehouse.States))]
		if r.IntN(2) == 0 {
			d.Connection.Status = gatehouse.Online
		}
		// Devices seen at some time in the last 1000 minutes, offline or
		// not, and some never seen.
		if d.Connection.Status == gatehouse.Online || r.IntN(2) == 0 {
			seen := base.Add(-time.Duration(r.IntN(1000)) * time.Minute)
			d.Connection.LastSeen = &seen
		}
		d.Enrollment = pick("", "enr-a", "enr-b")
		ds = append(ds, d)
	}
	r.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	return ds
}

// manyValues returns vals among 60 values that match no device: more
// values than a backend may merge one stream each.
func manyValues(vals ...string) []string {
	out := slices.Clone(vals)
	for i := range 60 {
		out = append(out, fmt.Sprintf("none-%d", i))
	}
	return out
}

// matches is the reference semantics of a DeviceFilter, in Go.
func matches(f gatehouse.DeviceFilter, d *gatehouse.Device) bool {
	if d.Scope != f.Scope {
		return false
	}
	if len(f.States) > 0 && !slices.Contains(f.States, d.State) {
		return false
	}
	if f.Connection != "" && d.Connection.Status != f.Connection {
		return false
	}
	if !f.MatchLastSeen(d.Connection.LastSeen) {
		return false
	}
	if f.Enrollment != "" && d.Enrollment != f.Enrollment {
		return false
	}
	for _, sel := range f.Selectors {
		if !sel.Match(d.Tags) {
			return false
		}
	}
	return true
}

// listAll pages through ListDevices with page size limit and returns every ID.
func listAll(t *testing.T, s gatehouse.Store, f gatehouse.DeviceFilter, limit int) []string {
	t.Helper()
	var out []string
	f.Limit = limit
	for {
		page, err := s.ListDevices(context.Background(), f)
		if err != nil {
			t.Fatalf("ListDevices(%+v): %v", f, err)
		}
		if len(page) > limit {
			t.Fatalf("ListDevices returned %d devices, want at most %d", len(page), limit)
		}
		for _, d := range page {
			if d.Scope != f.Scope {
				t.Fatalf("ListDevices(scope %s) returned a device of scope %s", f.Scope, d.Scope)
			}
			out = append(out, d.ID)
		}
		if len(page) < limit {
			return out
		}
		f.After = page[len(page)-1].ID
	}
}

func testFilters(t *testing.T, s gatehouse.Store) {
	const scope = "acme"
	createScopes(t, s, scope, "other")
	all := dataset(scope, 300, 1)
	// The other scope holds the same IDs with different tags and states:
	// a filter that leaks across scopes returns wrong devices.
	others := dataset("other", 300, 2)
	for i := 0; i < len(all); i += 100 {
		createDevices(t, s, all[i:i+100]...)
		createDevices(t, s, others[i:i+100]...)
	}

	sel := func(key string, op gatehouse.SelectorOp, vals ...string) gatehouse.TagSelector {
		return gatehouse.TagSelector{Key: key, Op: op, Values: vals}
	}
	// Last-seen bounds taken from the data, so that some devices sit
	// exactly on a bound.
	var seen []time.Time
	for _, d := range all {
		if d.Connection.LastSeen != nil {
			seen = append(seen, *d.Connection.LastSeen)
		}
	}
	slices.SortFunc(seen, func(a, b time.Time) int { return a.Compare(b) })
	q1, mid, q3 := seen[len(seen)/4], seen[len(seen)/2], seen[3*len(seen)/4]
	tests := []struct {
		name string
		f    gatehouse.DeviceFilter
	}{
		{"all", gatehouse.DeviceFilter{}},
		{"state", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateActive}}},
		{"states", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateActive, gatehouse.StateQuarantined, gatehouse.StateDecommissioned}}},
		{"online", gatehouse.DeviceFilter{Connection: gatehouse.Online}},
		{"offline", gatehouse.DeviceFilter{Connection: gatehouse.Offline}},
		{"eq", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{sel("env", gatehouse.SelEq, "prod")}}},
		{"eq-empty-value", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{sel("region", gatehouse.SelEq, "")}}},
		{"eq-no-match", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{sel("env", gatehouse.SelEq, "nope")}}},
		{"noteq", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{sel("env", gatehouse.SelNotEq, "prod")}}},
		{"in", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{sel("region", gatehouse.SelIn, "eu-west", "ap-south")}}},
		{"notin", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{sel("region", gatehouse.SelNotIn, "eu-west", "ap-south")}}},
		// A value or state named twice must not list a device twice (a
		// backend may run one index stream per value or state).
		{"in-repeated", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{sel("env", gatehouse.SelIn, "prod", "dev", "prod")}}},
		{"in-many", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{sel("fw", gatehouse.SelIn, manyValues("1.1", "2.0")...)}}},
		{"states-repeated", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateActive, gatehouse.StateInactive, gatehouse.StateActive}}},
		{"states-and-in", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateActive, gatehouse.StateInactive},
			Selectors: []gatehouse.TagSelector{sel("region", gatehouse.SelIn, "eu-west", "us-east", "")}}},
		{"states-and-exists", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateProvisioned, gatehouse.StateQuarantined},
			Selectors: []gatehouse.TagSelector{sel("fw", gatehouse.SelExists), sel("env", gatehouse.SelNotEq, "dev")}}},
		{"exists", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{sel("canary", gatehouse.SelExists)}}},
		{"notexists", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{sel("fw", gatehouse.SelNotExists)}}},
		{"exists-unknown-key", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{sel("nope", gatehouse.SelExists)}}},
		{"notexists-unknown-key", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{sel("nope", gatehouse.SelNotExists)}}},
		{"and-eq-in", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{
			sel("env", gatehouse.SelEq, "prod"), sel("fw", gatehouse.SelIn, "1.0", "2.0")}}},
		{"and-negatives", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{
			sel("env", gatehouse.SelNotEq, "dev"), sel("region", gatehouse.SelNotIn, "us-east"), sel("canary", gatehouse.SelNotExists)}}},
		{"and-same-key", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{
			sel("env", gatehouse.SelExists), sel("env", gatehouse.SelNotEq, "staging")}}},
		{"seen-before", gatehouse.DeviceFilter{LastSeenBefore: mid}},
		{"seen-after", gatehouse.DeviceFilter{LastSeenAfter: mid}},
		{"seen-window", gatehouse.DeviceFilter{LastSeenAfter: q1, LastSeenBefore: q3}},
		{"seen-empty-window", gatehouse.DeviceFilter{LastSeenAfter: q3, LastSeenBefore: q1}},
		{"seen-after-offline", gatehouse.DeviceFilter{LastSeenAfter: q1, Connection: gatehouse.Offline}},
		{"enrollment", gatehouse.DeviceFilter{Enrollment: "enr-a"}},
		{"enrollment-unknown", gatehouse.DeviceFilter{Enrollment: "enr-nope"}},
		{"enrollment-and-tag", gatehouse.DeviceFilter{Enrollment: "enr-b", Selectors: []gatehouse.TagSelector{sel("env", gatehouse.SelEq, "prod")}}},
		{"seen-and-state-and-tag", gatehouse.DeviceFilter{LastSeenBefore: q3, States: []gatehouse.State{gatehouse.StateActive},
			Selectors: []gatehouse.TagSelector{sel("region", gatehouse.SelIn, "eu-west", "us-east")}}},
		{"everything", gatehouse.DeviceFilter{
			States:     []gatehouse.State{gatehouse.StateProvisioned, gatehouse.StateActive, gatehouse.StateInactive},
			Connection: gatehouse.Online,
			Selectors: []gatehouse.TagSelector{
				sel("env", gatehouse.SelIn, "prod", "staging"), sel("slot-3", gatehouse.SelNotExists), sel("region", gatehouse.SelExists)},
			LastSeenAfter: q1, Enrollment: "enr-a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.Scope = scope
			var want []string
			for _, d := range all {
				if matches(f, d) {
					want = append(want, d.ID)
				}
			}
			slices.Sort(want)
			for _, limit := range []int{1000, 37} {
				got := listAll(t, s, f, limit)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("limit %d: got %d devices, want %d (-want +got):\n%s", limit, len(got), len(want), diff)
				}
			}
		})
	}

	t.Run("RecordsIntact", func(t *testing.T) {
		// A filtered list returns whole devices, not just IDs.
		f := gatehouse.DeviceFilter{Scope: scope, Selectors: []gatehouse.TagSelector{sel("canary", gatehouse.SelExists)}, Limit: 1000}
		got, err := s.ListDevices(context.Background(), f)
		if err != nil {
			t.Fatalf("ListDevices: %v", err)
		}
		byID := map[string]*gatehouse.Device{}
		for _, d := range all {
			byID[d.ID] = d
		}
		for _, d := range got {
			if diff := cmp.Diff(byID[d.ID], d, diffOpts...); diff != "" {
				t.Errorf("ListDevices record %s (-want +got):\n%s", d.ID, diff)
			}
		}
	})

	t.Run("UnknownScope", func(t *testing.T) {
		got, err := s.ListDevices(context.Background(), gatehouse.DeviceFilter{Scope: "nope", Limit: 10})
		if err != nil && gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Fatalf("ListDevices(unknown scope): got %v, want nil or not_found", err)
		}
		if len(got) != 0 {
			t.Errorf("ListDevices(unknown scope): got %d devices, want 0", len(got))
		}
	})
}

func testPagination(t *testing.T, s gatehouse.Store) {
	ctx := context.Background()
	const scope = "acme"
	createScopes(t, s, scope)
	// Even IDs exist from the start; every third of them is deleted while
	// paging; odd IDs are inserted while paging.
	var initial []*gatehouse.Device
	for i := 0; i < 200; i += 2 {
		initial = append(initial, newDevice(scope, fmt.Sprintf("d%03d", i), map[string]string{"p": "x"}))
	}
	createDevices(t, s, initial...)
	stable := map[string]bool{}
	for i := 0; i < 200; i += 2 {
		if i%3 != 0 {
			stable[fmt.Sprintf("d%03d", i)] = true
		}
	}

	for _, f := range []gatehouse.DeviceFilter{
		{Scope: scope},
		{Scope: scope, Selectors: []gatehouse.TagSelector{{Key: "p", Op: gatehouse.SelEq, Values: []string{"x"}}}},
	} {
		f.Limit = 10
		seen := map[string]int{}
		prev := ""
		next := 1 // next odd ID to insert
		for page := 0; ; page++ {
			got, err := s.ListDevices(ctx, f)
			if err != nil {
				t.Fatalf("ListDevices: %v", err)
			}
			for _, d := range got {
				if d.ID <= prev {
					t.Fatalf("page %d: got ID %s after %s, want ascending IDs", page, d.ID, prev)
				}
				prev = d.ID
				seen[d.ID]++
			}
			if len(got) < f.Limit {
				break
			}
			f.After = got[len(got)-1].ID
			// Churn between pages, before and after the cursor.
			update(t, s, func(tx gatehouse.Tx) error {
				for range 3 {
					if next < 200 {
						id := fmt.Sprintf("d%03d", next)
						if err := tx.CreateDevice(newDevice(scope, id, map[string]string{"p": "x"})); err != nil {
							return err
						}
						next += 2
					}
				}
				// Multiples of 6, one behind the cursor and one ahead.
				for _, i := range []int{page * 6, 198 - page*6} {
					if i < 0 || i > 198 {
						continue
					}
					id := fmt.Sprintf("d%03d", i)
					if err := tx.DeleteDevice(scope, id); err != nil && gatehouse.ErrorCode(err) != gatehouse.ENotFound {
						return err
					}
				}
				return nil
			})
			if page > 100 {
				t.Fatalf("pagination does not terminate")
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("device %s returned %d times, want once", id, n)
			}
		}
		for id := range stable {
			if seen[id] != 1 {
				t.Errorf("device %s existed throughout: returned %d times, want once", id, seen[id])
			}
		}
		// Reset for the next filter: recreate what was deleted, drop what was inserted.
		update(t, s, func(tx gatehouse.Tx) error {
			for i := 0; i < 200; i++ {
				id := fmt.Sprintf("d%03d", i)
				err := tx.DeleteDevice(scope, id)
				if err != nil && gatehouse.ErrorCode(err) != gatehouse.ENotFound {
					return err
				}
			}
			for _, d := range initial {
				if err := tx.CreateDevice(d.Clone()); err != nil {
					return err
				}
			}
			return nil
		})
	}
}
