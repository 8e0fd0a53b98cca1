package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/jackc/pgx/v5"
)

// TestQueriesUseIndexes checks the plans of the device list queries: none
// may read devices or device_tags front to back. It runs each query twice:
// with sequential scans disabled (an index path must exist for every query
// shape), and with the planner free to choose on a few thousand analysed
// rows (for the selective filters, it must choose an index).
func TestQueriesUseIndexes(t *testing.T) {
	dsn := newDatabase(t)
	s := mustOpen(t, dsn)
	ctx := context.Background()
	// Quarantined and canary devices are rare (0.5% and 1%), the rest common.
	states := []gatehouse.State{gatehouse.StateProvisioned, gatehouse.StateActive, gatehouse.StateInactive, gatehouse.StateDecommissioned}
	for _, scope := range []string{"acme", "other"} {
		if err := s.Update(ctx, func(tx gatehouse.Tx) error {
			if err := tx.CreateScope(&gatehouse.Scope{ID: scope, CreatedAt: ts()}); err != nil {
				return err
			}
			for i := range 3000 {
				d := testDevice(scope, fmt.Sprintf("dev-%05d", i))
				d.Tags = map[string]string{
					"env":  []string{"prod", "staging", "dev"}[i%3],
					"site": fmt.Sprintf("site-%d", i%50),
				}
				if i%100 == 0 {
					d.Tags["canary"] = "true"
				}
				d.State = states[i%len(states)]
				if i%200 == 0 {
					d.State = gatehouse.StateQuarantined
				}
				if i%2 == 0 {
					d.Connection.Status = gatehouse.Online
				}
				if err := tx.CreateDevice(d); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("create devices: %v", err)
		}
	}
	conn := connect(t, dsn)
	if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}

	sel := func(key string, op gatehouse.SelectorOp, vals ...string) []gatehouse.TagSelector {
		return []gatehouse.TagSelector{{Key: key, Op: op, Values: vals}}
	}
	tests := []struct {
		name      string
		f         gatehouse.DeviceFilter
		selective bool   // few rows match: the planner must pick an index on its own
		uses      string // and this one
	}{
		{"all", gatehouse.DeviceFilter{Limit: 100}, true, ""},
		{"page", gatehouse.DeviceFilter{After: "dev-02000", Limit: 100}, true, ""},
		{"state", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateQuarantined}, Limit: 100}, true, "devices_state_idx"},
		{"states", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateActive, gatehouse.StateInactive}, Limit: 100}, false, ""},
		{"connection", gatehouse.DeviceFilter{Connection: gatehouse.Online, Limit: 100}, false, ""},
		{"eq", gatehouse.DeviceFilter{Selectors: sel("canary", gatehouse.SelEq, "true"), Limit: 100}, true, "device_tags_kv_idx"},
		{"eq-common", gatehouse.DeviceFilter{Selectors: sel("env", gatehouse.SelEq, "prod"), Limit: 100}, false, ""},
		{"in", gatehouse.DeviceFilter{Selectors: sel("canary", gatehouse.SelIn, "true", "false"), Limit: 100}, true, "device_tags_kv_idx"},
		// 2% of a small table: a hash join over all devices is honestly cheaper.
		{"in-common", gatehouse.DeviceFilter{Selectors: sel("site", gatehouse.SelIn, "site-7", "site-8"), Limit: 100}, false, ""},
		{"exists", gatehouse.DeviceFilter{Selectors: sel("canary", gatehouse.SelExists), Limit: 100}, true, "device_tags_kv_idx"},
		{"noteq", gatehouse.DeviceFilter{Selectors: sel("env", gatehouse.SelNotEq, "prod"), Limit: 100}, false, ""},
		{"notin", gatehouse.DeviceFilter{Selectors: sel("site", gatehouse.SelNotIn, "site-7"), Limit: 100}, false, ""},
		{"notexists", gatehouse.DeviceFilter{Selectors: sel("canary", gatehouse.SelNotExists), Limit: 100}, false, ""},
		{"everything", gatehouse.DeviceFilter{
			States:     []gatehouse.State{gatehouse.StateActive, gatehouse.StateProvisioned},
			Connection: gatehouse.Online,
			Selectors: []gatehouse.TagSelector{
				{Key: "env", Op: gatehouse.SelIn, Values: []string{"prod", "dev"}},
				{Key: "canary", Op: gatehouse.SelNotExists},
				{Key: "site", Op: gatehouse.SelEq, Values: []string{"site-4"}},
			},
			Limit: 100}, true, ""},
	}
	explain := func(t *testing.T, f gatehouse.DeviceFilter) string {
		t.Helper()
		f.Scope = "acme"
		query, args, err := postgres.ListDevicesQuery(f)
		if err != nil {
			t.Fatalf("ListDevicesQuery: %v", err)
		}
		rows, err := conn.Query(ctx, "EXPLAIN "+query, args...)
		if err != nil {
			t.Fatalf("EXPLAIN: %v", err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("EXPLAIN: %v", err)
		}
		return strings.Join(lines, "\n")
	}
	check := func(t *testing.T, plan string) {
		t.Helper()
		for _, table := range []string{"devices", "device_tags"} {
			if strings.Contains(plan, "Seq Scan on "+table+" ") {
				t.Errorf("plan reads %s sequentially:\n%s", table, plan)
			}
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
				t.Fatal(err)
			}
			check(t, explain(t, tc.f))
			if _, err := conn.Exec(ctx, `RESET enable_seqscan`); err != nil {
				t.Fatal(err)
			}
			plan := explain(t, tc.f)
			if testing.Verbose() {
				t.Logf("plan:\n%s", plan)
			}
			if tc.selective {
				check(t, plan)
			}
			if tc.uses != "" && !strings.Contains(plan, " "+tc.uses+" ") {
				t.Errorf("plan does not use %s:\n%s", tc.uses, plan)
			}
		})
	}
}
