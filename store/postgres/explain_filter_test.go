package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
)

// TestFilterQueriesUseIndexes covers the newer filters as
// TestQueriesUseIndexes does the older ones: devices by last seen and by
// enrollment, the device counts, the expiring-credential count, and the
// audit query by actor, subject, type (exact and prefix) and time. Every
// shape must have a plan without a sequential scan of its table (sequential
// scans disabled); on a few thousand analysed rows the planner must pick
// the named index on its own for the selective ones.
func TestFilterQueriesUseIndexes(t *testing.T) {
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	types := []string{"device.created", "device.updated", "device.state_changed", "credential.issued", "device.provisioned"}
	// VACUUM too: index-only scans count on the visibility map.
	conn := planDatabase(t, `VACUUM ANALYZE`, func(tx gatehouse.Tx, scope string) error {
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
	})
	device := func(name string, f gatehouse.DeviceFilter, selective bool, uses string) planCase {
		f.Scope, f.Limit = "acme", 100
		q, args, err := postgres.ListDevicesQuery(f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return planCase{name: "devices/" + name, query: q, args: args, selective: selective, uses: uses}
	}
	count := func(scope string, by gatehouse.DeviceCountBy, selective bool, uses string) planCase {
		q, args, err := postgres.CountQuery(scope, by)
		if err != nil {
			t.Fatal(err)
		}
		return planCase{name: fmt.Sprintf("count/%s/%q", by, scope), query: q, args: args, selective: selective, uses: uses}
	}
	event := func(name string, f gatehouse.EventFilter, uses string) planCase {
		f.Scope, f.Limit = "acme", 100
		q, args := postgres.EventQuery(f)
		return planCase{name: "events/" + name, query: q, args: args, selective: true, uses: uses}
	}
	common := func(pc planCase) planCase {
		pc.selective = false
		return pc
	}
	t0 := base.Add(3 * time.Hour)
	shapes := []planCase{
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
		{name: "expiring-credentials", query: postgres.ExpiringCountQuery, args: []any{base.Add(10 * 24 * time.Hour), base.Add(12 * 24 * time.Hour)},
			selective: true, uses: "credentials_active_expiry_idx"},
		event("actor", gatehouse.EventFilter{Actor: "token:0042"}, "events_actor_idx"),
		event("subject", gatehouse.EventFilter{Subject: "devices/dev-00042"}, "events_subject_idx"),
		event("type", gatehouse.EventFilter{Type: "credential.issued"}, "events_type_idx"),
		event("type-prefix", gatehouse.EventFilter{Type: "token.*"}, "events_type_idx"),
		// One event in five: walking the log in seq order finds a page
		// soonest, and the planner rightly does.
		common(event("type-prefix-common", gatehouse.EventFilter{Type: "credential.*"}, "")),
		event("since", gatehouse.EventFilter{Since: base.Add(7990 * time.Minute)}, "events_time_idx"),
		event("window", gatehouse.EventFilter{Since: base.Add(100 * time.Minute), Until: base.Add(150 * time.Minute)}, "events_time_idx"),
		event("actor-type", gatehouse.EventFilter{Actor: "token:0042", Type: "device.*"}, ""),
	}
	checkPlans(t, conn, []string{"devices", "device_tags", "credentials", "events"}, shapes)
}
