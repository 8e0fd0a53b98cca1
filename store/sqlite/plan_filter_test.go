package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// noFullScan fails if a plan reads a table front to back. A walk of a
// covering index over all scopes is allowed only where allowIndexScan says
// so (a count over every scope has to visit every row of its index).
func noFullScan(t *testing.T, plan string, allowIndexScan bool) {
	t.Helper()
	for _, line := range strings.Split(plan, "\n") {
		if !strings.HasPrefix(line, "SCAN ") {
			continue
		}
		if allowIndexScan && strings.Contains(line, "USING COVERING INDEX") {
			continue
		}
		t.Errorf("plan has a full scan: %q", line)
	}
}

// TestFilterQueryPlans covers the newer filters: devices by last seen
// (before, after, both) and by enrollment; the device counts by state, by
// connection and by a tag's value; the expiring-credential count; the audit
// query by actor, subject, type, type prefix and time.
func TestFilterQueryPlans(t *testing.T) {
	s := MustOpen(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(24 * time.Hour)

	t.Run("devices", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			f    gatehouse.DeviceFilter
			want string
		}{
			{"last-seen-before", gatehouse.DeviceFilter{LastSeenBefore: t0}, "devices_last_seen (scope=? AND last_seen<?)"},
			{"last-seen-after", gatehouse.DeviceFilter{LastSeenAfter: t0}, "devices_last_seen (scope=? AND last_seen>?)"},
			{"last-seen-window", gatehouse.DeviceFilter{LastSeenAfter: t0, LastSeenBefore: t1}, "devices_last_seen (scope=? AND last_seen>? AND last_seen<?)"},
			{"enrollment", gatehouse.DeviceFilter{Enrollment: "factory-7"}, "devices_enrollment (scope=? AND enrollment=? AND id>?)"},
			{"enrollment-state", gatehouse.DeviceFilter{Enrollment: "factory-7", States: []gatehouse.State{gatehouse.StateActive}}, "(scope=? AND "},
			{"enrollment-tag", gatehouse.DeviceFilter{Enrollment: "factory-7", Selectors: []gatehouse.TagSelector{{Key: "env", Op: gatehouse.SelEq, Values: []string{"prod"}}}},
				"device_tags_kv (scope=? AND key=? AND value=? AND device_id>?)"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := tc.f
				f.Scope, f.Limit = "acme", 100
				plan := queryPlan(t, s, f)
				t.Logf("plan:\n%s", plan)
				if !strings.Contains(plan, tc.want) {
					t.Errorf("plan: got\n%s\nwant it to mention %q", plan, tc.want)
				}
				noFullScan(t, plan, false)
			})
		}
	})

	t.Run("counts", func(t *testing.T) {
		for _, tc := range []struct {
			by   gatehouse.DeviceCountBy
			want string
		}{
			{"state", "devices_state (scope=?)"},
			{"connection", "devices_conn (scope=?)"},
			{"tag:site", "device_tags_kv (scope=? AND key=?)"},
		} {
			t.Run(string(tc.by), func(t *testing.T) {
				q, tag, err := countQuery(tc.by, true)
				if err != nil {
					t.Fatal(err)
				}
				args := []any{"acme"}
				if tag != "" {
					args = append(args, tag)
				}
				plan := explain(t, s, q, args...)
				t.Logf("one scope:\n%s", plan)
				if !strings.Contains(plan, "COVERING INDEX "+tc.want) {
					t.Errorf("plan: got\n%s\nwant the covering index %q", plan, tc.want)
				}
				noFullScan(t, plan, false)
				if strings.Contains(plan, "TEMP B-TREE") {
					t.Errorf("plan sorts: the index is in GROUP BY order:\n%s", plan)
				}
				// Every scope (metrics): one pass over the covering index.
				q, _, _ = countQuery(tc.by, false)
				plan = explain(t, s, q, args[1:]...)
				t.Logf("every scope:\n%s", plan)
				noFullScan(t, plan, true)
			})
		}
		// The devices without the tag: the total per scope, on an index.
		plan := explain(t, s, `SELECT scope, '', count(*) FROM devices WHERE scope = ? GROUP BY scope`, "acme")
		t.Logf("tag total:\n%s", plan)
		if !strings.Contains(plan, "COVERING INDEX") {
			t.Errorf("total plan: got\n%s\nwant a covering index", plan)
		}
		noFullScan(t, plan, false)
	})

	t.Run("expiring-credentials", func(t *testing.T) {
		plan := explain(t, s, expiringCountQuery, micros(t0), micros(t1))
		t.Logf("plan:\n%s", plan)
		if !strings.Contains(plan, "COVERING INDEX credentials_active_expiry (not_after>? AND not_after<?)") {
			t.Errorf("plan: got\n%s\nwant a range of credentials_active_expiry", plan)
		}
		noFullScan(t, plan, false)
	})

	t.Run("events", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			f    gatehouse.EventFilter
			want string
		}{
			{"actor", gatehouse.EventFilter{Actor: "token:abc"}, "events_actor (scope=? AND actor=? AND seq>?)"},
			{"subject", gatehouse.EventFilter{Subject: "devices/d1"}, "events_subject (scope=? AND subject=? AND seq>?)"},
			{"type", gatehouse.EventFilter{Type: "device.deleted"}, "events_type (scope=? AND type=? AND seq>?)"},
			{"type-prefix", gatehouse.EventFilter{Type: "credential.*"}, "events_type (scope=? AND type>? AND type<?)"},
			{"subject-time", gatehouse.EventFilter{Subject: "devices/d1", Since: t0}, "events_subject (scope=? AND subject=? AND seq>?)"},
			{"since", gatehouse.EventFilter{Since: t0}, "events_time (scope=? AND time>?)"},
			{"window", gatehouse.EventFilter{Since: t0, Until: t1}, "events_time (scope=? AND time>? AND time<?)"},
			{"actor-type", gatehouse.EventFilter{Actor: "token:abc", Type: "device.deleted"}, "(scope=? AND "},
			{"none", gatehouse.EventFilter{}, "PRIMARY KEY (scope=? AND seq>?)"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := tc.f
				f.Scope, f.Limit = "acme", 100
				q, args := eventQuery(f)
				plan := explain(t, s, q, args...)
				t.Logf("plan:\n%s", plan)
				if !strings.Contains(plan, tc.want) {
					t.Errorf("plan: got\n%s\nwant it to mention %q", plan, tc.want)
				}
				noFullScan(t, plan, false)
			})
		}
	})
}
