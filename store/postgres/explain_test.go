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
	// Quarantined and canary devices are rare (0.5% and 1%), the rest common.
	states := []gatehouse.State{gatehouse.StateProvisioned, gatehouse.StateActive, gatehouse.StateInactive, gatehouse.StateDecommissioned}
	conn := planDatabase(t, `ANALYZE`, func(tx gatehouse.Tx, scope string) error {
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
	})

	sel := func(key string, op gatehouse.SelectorOp, vals ...string) []gatehouse.TagSelector {
		return []gatehouse.TagSelector{{Key: key, Op: op, Values: vals}}
	}
	// selective: few rows match, so the planner must pick an index on its
	// own, and uses this one.
	device := func(name string, f gatehouse.DeviceFilter, selective bool, uses string) planCase {
		f.Scope = "acme"
		query, args, err := postgres.ListDevicesQuery(f)
		if err != nil {
			t.Fatalf("ListDevicesQuery: %v", err)
		}
		return planCase{name: name, query: query, args: args, selective: selective, uses: uses}
	}
	checkPlans(t, conn, []string{"devices", "device_tags"}, []planCase{
		device("all", gatehouse.DeviceFilter{Limit: 100}, true, ""),
		device("page", gatehouse.DeviceFilter{After: "dev-02000", Limit: 100}, true, ""),
		device("state", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateQuarantined}, Limit: 100}, true, "devices_state_idx"),
		device("states", gatehouse.DeviceFilter{States: []gatehouse.State{gatehouse.StateActive, gatehouse.StateInactive}, Limit: 100}, false, ""),
		device("connection", gatehouse.DeviceFilter{Connection: gatehouse.Online, Limit: 100}, false, ""),
		device("eq", gatehouse.DeviceFilter{Selectors: sel("canary", gatehouse.SelEq, "true"), Limit: 100}, true, "device_tags_kv_idx"),
		device("eq-common", gatehouse.DeviceFilter{Selectors: sel("env", gatehouse.SelEq, "prod"), Limit: 100}, false, ""),
		device("in", gatehouse.DeviceFilter{Selectors: sel("canary", gatehouse.SelIn, "true", "false"), Limit: 100}, true, "device_tags_kv_idx"),
		// 2% of a small table: a hash join over all devices is honestly cheaper.
		device("in-common", gatehouse.DeviceFilter{Selectors: sel("site", gatehouse.SelIn, "site-7", "site-8"), Limit: 100}, false, ""),
		device("exists", gatehouse.DeviceFilter{Selectors: sel("canary", gatehouse.SelExists), Limit: 100}, true, "device_tags_kv_idx"),
		device("noteq", gatehouse.DeviceFilter{Selectors: sel("env", gatehouse.SelNotEq, "prod"), Limit: 100}, false, ""),
		device("notin", gatehouse.DeviceFilter{Selectors: sel("site", gatehouse.SelNotIn, "site-7"), Limit: 100}, false, ""),
		device("notexists", gatehouse.DeviceFilter{Selectors: sel("canary", gatehouse.SelNotExists), Limit: 100}, false, ""),
		device("everything", gatehouse.DeviceFilter{
			States:     []gatehouse.State{gatehouse.StateActive, gatehouse.StateProvisioned},
			Connection: gatehouse.Online,
			Selectors: []gatehouse.TagSelector{
				{Key: "env", Op: gatehouse.SelIn, Values: []string{"prod", "dev"}},
				{Key: "canary", Op: gatehouse.SelNotExists},
				{Key: "site", Op: gatehouse.SelEq, Values: []string{"site-4"}},
			},
			Limit: 100}, true, ""),
	})
}

// planDatabase makes a fresh database with scopes acme and other, each
// filled by fill in one transaction, and returns a connection to it for
// EXPLAIN once analyze (ANALYZE, or VACUUM ANALYZE) has told the planner
// about the rows.
func planDatabase(t *testing.T, analyze string, fill func(tx gatehouse.Tx, scope string) error) *pgx.Conn {
	t.Helper()
	dsn := newDatabase(t)
	s := mustOpen(t, dsn)
	ctx := context.Background()
	for _, scope := range []string{"acme", "other"} {
		if err := s.Update(ctx, func(tx gatehouse.Tx) error {
			if err := tx.CreateScope(&gatehouse.Scope{ID: scope, CreatedAt: ts()}); err != nil {
				return err
			}
			return fill(tx, scope)
		}); err != nil {
			t.Fatalf("fill %s: %v", scope, err)
		}
	}
	conn := connect(t, dsn)
	if _, err := conn.Exec(ctx, analyze); err != nil {
		t.Fatal(err)
	}
	return conn
}

// planCase is a query whose plans checkPlans checks.
type planCase struct {
	name      string
	query     string
	args      []any
	selective bool // few rows match: the planner must avoid a sequential scan on its own
	// uses is the index a plan must use: the planner's own plan if the case
	// is selective, else the plan with sequential scans off.
	uses string
	// inOrder, if set, says what comes in index order: the planner's own
	// plan must not sort.
	inOrder string
}

// checkPlans explains every case twice: with sequential scans off, where
// no table of tables may be read front to back (an index path must exist
// for every query shape), and with the planner free to choose on the
// analysed rows.
func checkPlans(t *testing.T, conn *pgx.Conn, tables []string, cases []planCase) {
	ctx := context.Background()
	explain := func(t *testing.T, pc planCase) string {
		t.Helper()
		rows, err := conn.Query(ctx, "EXPLAIN "+pc.query, pc.args...)
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
		for _, table := range tables {
			if strings.Contains(plan, "Seq Scan on "+table+" ") {
				t.Errorf("plan reads %s sequentially:\n%s", table, plan)
			}
		}
	}
	for _, pc := range cases {
		t.Run(pc.name, func(t *testing.T) {
			if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
				t.Fatal(err)
			}
			forced := explain(t, pc)
			check(t, forced)
			if !pc.selective && pc.uses != "" && !strings.Contains(forced, " "+pc.uses+" ") {
				t.Errorf("without sequential scans, the plan does not use %s:\n%s", pc.uses, forced)
			}
			if _, err := conn.Exec(ctx, `RESET enable_seqscan`); err != nil {
				t.Fatal(err)
			}
			plan := explain(t, pc)
			if testing.Verbose() {
				t.Logf("plan:\n%s", plan)
			}
			if pc.selective {
				check(t, plan)
			}
			if pc.selective && pc.uses != "" && !strings.Contains(plan, " "+pc.uses+" ") {
				t.Errorf("plan does not use %s:\n%s", pc.uses, plan)
			}
			if pc.inOrder != "" && strings.Contains(plan, "Sort") {
				t.Errorf("plan sorts; %s should come in index order:\n%s", pc.inOrder, plan)
			}
		})
	}
}
