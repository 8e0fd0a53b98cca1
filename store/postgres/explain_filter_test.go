package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/jackc/pgx/v5"
)

// TestFilterQueriesUseIndexes covers the newer filters as
// TestQueriesUseIndexes does the older ones: devices by last seen and by
// enrollment, the device counts, the expiring-credential count, and the
// audit query by actor, subject, type (exact and prefix) and time. Every
// shape must have a plan without a sequential scan of its table (sequential
// scans disabled); on a few thousand analysed rows the planner must pick
// the named index on its own for the selective ones.
func TestFilterQueriesUseIndexes(t *testing.T) {
	dsn := newDatabase(t)
	s := mustOpen(t, dsn)
	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	types := []string{"device.created", "device.updated", "device.state_changed", "credential.issued", "device.provisioned"}
	for _, scope := range []string{"acme", "other"} {
		if err := s.Update(ctx, func(tx gatehouse.Tx) error {
			if err := tx.CreateScope(&gatehouse.Scope{ID: scope, CreatedAt: ts()}); err != nil {
				return err
			}
			for i := range 4000 {
				d := testDevice(scope, fmt.Sprintf("dev-%05d", i))
				// Last seen spread over 400 hours; one in ten never seen.
				if i%10 != 0 {
					ls := base.Add(time.Duration(i%400) * time.Hour)
					d.Connection.LastSeen = &ls
				}
				d.Enrollment = fmt.Sprintf("enr-%03d", i%200)
				d.Tags["site"] = fmt.Sprintf("site-%d", i%20)
				if err := tx.CreateDevice(d); err != nil {
					return err
				}
				na := base.Add(time.Duration(i%365) * 24 * time.Hour)
				c := &gatehouse.Credential{ID: fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15), Scope: scope, DeviceID: d.ID,
					Kind: gatehouse.CredentialX509, Status: gatehouse.CredentialActive, NotAfter: &na, CreatedAt: ts(), CertDER: make([]byte, 300)}
				if i%4 == 1 {
					c.Status = gatehouse.CredentialSuperseded
				}
				if err := tx.CreateCredential(c); err != nil {
					return err
				}
			}
			// Events: 8000, an hour apart; 100 actors, a subject per device;
			// credential.issued one in five.
			for i := range 8000 {
				typ := types[i%len(types)]
				if i%400 == 3 {
					typ = "token.revoked" // rare
				}
				e := &gatehouse.Event{Scope: scope, Type: typ, Time: base.Add(time.Duration(i) * time.Minute),
					Actor: fmt.Sprintf("token:%04d", i%100), Subject: fmt.Sprintf("devices/dev-%05d", i%4000)}
				if err := tx.AppendEvent(e); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("fill %s: %v", scope, err)
		}
	}
	conn := connect(t, dsn)
	// VACUUM too: index-only scans count on the visibility map.
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		t.Fatal(err)
	}
	explain := func(t *testing.T, query string, args ...any) string {
		t.Helper()
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
	type shape struct {
		name      string
		query     string
		args      []any
		selective bool   // the planner must avoid a sequential scan on its own
		uses      string // and use this index; or, if not selective, when sequential scans are off
	}
	device := func(name string, f gatehouse.DeviceFilter, selective bool, uses string) shape {
		f.Scope, f.Limit = "acme", 100
		q, args, err := postgres.ListDevicesQuery(f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return shape{"devices/" + name, q, args, selective, uses}
	}
	count := func(scope string, by gatehouse.DeviceCountBy, selective bool, uses string) shape {
		q, args, err := postgres.CountQuery(scope, by)
		if err != nil {
			t.Fatal(err)
		}
		return shape{fmt.Sprintf("count/%s/%q", by, scope), q, args, selective, uses}
	}
	event := func(name string, f gatehouse.EventFilter, uses string) shape {
		f.Scope, f.Limit = "acme", 100
		q, args := postgres.EventQuery(f)
		return shape{"events/" + name, q, args, true, uses}
	}
	eventQ := func(f gatehouse.EventFilter) string {
		f.Scope, f.Limit = "acme", 100
		q, _ := postgres.EventQuery(f)
		return q
	}
	eventArgs := func(f gatehouse.EventFilter) []any {
		f.Scope, f.Limit = "acme", 100
		_, a := postgres.EventQuery(f)
		return a
	}
	t0 := base.Add(3 * time.Hour)
	shapes := []shape{
		device("last-seen-before", gatehouse.DeviceFilter{LastSeenBefore: t0}, true, "devices_last_seen_idx"),
		device("last-seen-after", gatehouse.DeviceFilter{LastSeenAfter: base.Add(397 * time.Hour)}, true, "devices_last_seen_idx"),
		device("last-seen-window", gatehouse.DeviceFilter{LastSeenAfter: t0, LastSeenBefore: t0.Add(time.Hour)}, true, "devices_last_seen_idx"),
		device("last-seen-common", gatehouse.DeviceFilter{LastSeenAfter: base.Add(time.Hour)}, false, ""),
		device("enrollment", gatehouse.DeviceFilter{Enrollment: "enr-007"}, true, "devices_enrollment_idx"),
		device("enrollment-last-seen", gatehouse.DeviceFilter{Enrollment: "enr-007", LastSeenBefore: base.Add(200 * time.Hour)}, true, ""),
		// A count visits every device of its scope (here half the table),
		// so the planner may rightly prefer a sequential scan; the index-only
		// path must exist.
		count("acme", "state", false, "devices_state_idx"),
		count("acme", "connection", false, "devices_conn_idx"),
		count("acme", "tag:site", false, "device_tags_kv_idx"),
		// Every scope (metrics): every row is counted.
		count("", "state", false, "devices_state_idx"),
		count("", "tag:site", false, ""), // any index: every tag row of the key is counted
		{"expiring-credentials", postgres.ExpiringCountQuery, []any{base.Add(10 * 24 * time.Hour), base.Add(12 * 24 * time.Hour)}, true, "credentials_active_expiry_idx"},
		event("actor", gatehouse.EventFilter{Actor: "token:0042"}, "events_actor_idx"),
		event("subject", gatehouse.EventFilter{Subject: "devices/dev-00042"}, "events_subject_idx"),
		event("type", gatehouse.EventFilter{Type: "credential.issued"}, "events_type_idx"),
		event("type-prefix", gatehouse.EventFilter{Type: "token.*"}, "events_type_idx"),
		// One event in five: walking the log in seq order finds a page
		// soonest, and the planner rightly does.
		{"events/type-prefix-common", eventQ(gatehouse.EventFilter{Type: "credential.*"}), eventArgs(gatehouse.EventFilter{Type: "credential.*"}), false, ""},
		event("since", gatehouse.EventFilter{Since: base.Add(7990 * time.Minute)}, "events_time_idx"),
		event("window", gatehouse.EventFilter{Since: base.Add(100 * time.Minute), Until: base.Add(150 * time.Minute)}, "events_time_idx"),
		event("actor-type", gatehouse.EventFilter{Actor: "token:0042", Type: "device.*"}, ""),
	}
	tables := []string{"devices", "device_tags", "credentials", "events"}
	check := func(t *testing.T, plan string) {
		t.Helper()
		for _, table := range tables {
			if strings.Contains(plan, "Seq Scan on "+table+" ") {
				t.Errorf("plan reads %s sequentially:\n%s", table, plan)
			}
		}
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
				t.Fatal(err)
			}
			forced := explain(t, sh.query, sh.args...)
			check(t, forced)
			if !sh.selective && sh.uses != "" && !strings.Contains(forced, " "+sh.uses+" ") {
				t.Errorf("without sequential scans, the plan does not use %s:\n%s", sh.uses, forced)
			}
			if _, err := conn.Exec(ctx, `RESET enable_seqscan`); err != nil {
				t.Fatal(err)
			}
			plan := explain(t, sh.query, sh.args...)
			if testing.Verbose() {
				t.Logf("plan:\n%s", plan)
			}
			if sh.selective {
				check(t, plan)
			}
			if sh.selective && sh.uses != "" && !strings.Contains(plan, " "+sh.uses+" ") {
				t.Errorf("plan does not use %s:\n%s", sh.uses, plan)
			}
		})
	}
}
