package sqlite

import (
	"context"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

// queryPlan returns the EXPLAIN QUERY PLAN of the filter's query, one step
// per line.
func queryPlan(t *testing.T, s *Store, f gatehouse.DeviceFilter) string {
	t.Helper()
	query, args := deviceQuery(f)
	return explain(t, s, query, args...)
}

// explain returns the EXPLAIN QUERY PLAN of a query, one step per line.
func explain(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.readDB.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("EXPLAIN: %v", err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "\n")
}

func TestQueryPlan(t *testing.T) {
	s := MustOpen(t)
	sel := func(key string, op gatehouse.SelectorOp, vals ...string) []gatehouse.TagSelector {
		return []gatehouse.TagSelector{{Key: key, Op: op, Values: vals}}
	}
	for _, tc := range []struct {
		name string
		f    gatehouse.DeviceFilter
		want []string // each must appear in the plan
	}{
		{"eq", gatehouse.DeviceFilter{Selectors: sel("env", gatehouse.SelEq, "prod")},
			[]string{"device_tags_kv (scope=? AND key=? AND value=? AND device_id>?)", "devices_1 (scope=? AND id=?)"}},
		{"in", gatehouse.DeviceFilter{Selectors: sel("env", gatehouse.SelIn, "prod", "dev")}, []string{"device_tags_kv"}},
		{"exists", gatehouse.DeviceFilter{Selectors: sel("env", gatehouse.SelExists)}, []string{"device_tags_kv"}},
		{"noteq", gatehouse.DeviceFilter{Selectors: sel("env", gatehouse.SelNotEq, "prod")}, []string{"SEARCH x USING PRIMARY KEY (scope=? AND device_id=? AND key=?)"}},
		{"state", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateActive}}, []string{"devices_state"}},
		// Several states: one range of devices_state per state, each in ID
		// order, merged (no sort, and a rare state is not a scope scan).
		{"states", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateActive, gatehouse.StateInactive}},
			[]string{"MERGE (UNION ALL)", "devices_state (scope=? AND state=? AND id>?)"}},
		// "in": one stream of device_tags_kv per value, merged.
		{"in-merged", gatehouse.DeviceFilter{Selectors: sel("env", gatehouse.SelIn, "prod", "dev", "test")},
			[]string{"MERGE (UNION ALL)", "device_tags_kv (scope=? AND key=? AND value=? AND device_id>?)", "devices_1 (scope=? AND id=?)"}},
		{"in-merged-and-states", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateActive, gatehouse.StateInactive},
			Selectors: sel("env", gatehouse.SelIn, "prod", "dev")},
			[]string{"MERGE (UNION ALL)", "device_tags_kv (scope=? AND key=? AND value=? AND device_id>?)", "devices_1 (scope=? AND id=?)"}},
		{"states-and-exists", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateActive, gatehouse.StateInactive},
			Selectors: sel("env", gatehouse.SelExists)},
			[]string{"MERGE (UNION ALL)", "devices_state (scope=? AND state=? AND id", "device_tags_kv"}},
		{"and", gatehouse.DeviceFilter{Selectors: []gatehouse.TagSelector{
			{Key: "env", Op: gatehouse.SelEq, Values: []string{"prod"}},
			{Key: "site", Op: gatehouse.SelIn, Values: []string{"a", "b"}},
			{Key: "canary", Op: gatehouse.SelNotExists},
		}}, []string{"device_tags_kv", "PRIMARY KEY"}},
		{"state-and-tag", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateActive}, Selectors: sel("env", gatehouse.SelEq, "prod")},
			[]string{"device_tags_kv (scope=? AND key=? AND value=? AND device_id>?)", "devices_1 (scope=? AND id=?)"}},
		{"connection-and-tag", gatehouse.DeviceFilter{Connection: gatehouse.Online, Selectors: sel("env", gatehouse.SelEq, "prod")},
			[]string{"device_tags_kv (scope=? AND key=? AND value=? AND device_id>?)", "devices_1 (scope=? AND id=?)"}},
		{"connection", gatehouse.DeviceFilter{Connection: gatehouse.Online}, []string{"devices_conn"}},
		{"none", gatehouse.DeviceFilter{}, []string{"(scope=? AND id>?)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.Scope, f.Limit = "acme", 100
			plan := queryPlan(t, s, f)
			t.Logf("plan:\n%s", plan)
			for _, w := range tc.want {
				if !strings.Contains(plan, w) {
					t.Errorf("plan: got\n%s\nwant it to mention %q", plan, w)
				}
			}
			for _, line := range strings.Split(plan, "\n") {
				if strings.HasPrefix(line, "SCAN ") {
					t.Errorf("plan has a full scan: %q", line)
				}
				if strings.Contains(line, "TEMP B-TREE") {
					t.Errorf("plan sorts: %q; pages must come in index order", line)
				}
			}
		})
	}
}
