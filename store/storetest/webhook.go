package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

func testWebhooks(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	createScopes(t, s, "acme", "beta")
	t0 := now()
	w := &gatehouse.EventHook{
		Scope: "acme", ID: "hook-1", URL: "https://example.com/hook", Events: []string{"device.*", "token.created"},
		SealedSecret: []byte{1, 2, 3}, CreatedAt: t0, CreatedBy: "token:a",
		NextAttempt: t0, LeaseUntil: t0,
	}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateWebhook(w) })
	w2 := &gatehouse.EventHook{Scope: "beta", ID: "hook-2", URL: "http://127.0.0.1:1/x", SealedSecret: []byte{9}, CreatedAt: t0, NextAttempt: t0, LeaseUntil: t0}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateWebhook(w2) })

	got, err := s.GetWebhook(ctx, "acme", "hook-1")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(w, got, diffOpts...); d != "" {
		t.Errorf("GetWebhook (-want +got):\n%s", d)
	}
	checkUTC(t, "webhook", &got.CreatedAt, &got.NextAttempt, &got.LeaseUntil)

	err = s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateWebhook(w) })
	wantCode(t, "duplicate webhook", err, gatehouse.EConflict)
	err = s.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.CreateWebhook(&gatehouse.EventHook{Scope: "nope", ID: "x", URL: "https://x", SealedSecret: []byte{1}, CreatedAt: t0})
	})
	wantCode(t, "webhook of a missing scope", err, gatehouse.ENotFound)
	_, err = s.GetWebhook(ctx, "beta", "hook-1")
	wantCode(t, "webhook of another scope", err, gatehouse.ENotFound)

	all, err := s.ListWebhooks(ctx, "")
	if err != nil || len(all) != 2 || all[0].ID != "hook-1" || all[1].ID != "hook-2" {
		t.Errorf("ListWebhooks(all): got %v (err %v), want hook-1, hook-2", all, err)
	}
	one, err := s.ListWebhooks(ctx, "beta")
	if err != nil || len(one) != 1 || one[0].ID != "hook-2" {
		t.Errorf("ListWebhooks(beta): got %v (err %v), want hook-2", one, err)
	}

	// Cursor and lease.
	update(t, s, func(tx gatehouse.Tx) error {
		cur, err := tx.GetWebhook("acme", "hook-1")
		if err != nil {
			return err
		}
		cur.DeliveredSeq, cur.Failures, cur.LastError, cur.Generation = 7, 2, "HTTP 500", 1
		cur.LeaseOwner, cur.LeaseUntil, cur.NextAttempt = "node-a", t0.Add(time.Minute), t0.Add(time.Second)
		if err := tx.UpdateWebhook(cur); err != nil {
			return err
		}
		return tx.AddDeadLetter(&gatehouse.DeadLetter{Scope: "acme", WebhookID: "hook-1", Seq: 5, Type: "device.created", Attempts: 8, LastError: "timeout", Time: t0})
	})
	got, _ = s.GetWebhook(ctx, "acme", "hook-1")
	if got.DeliveredSeq != 7 || got.Failures != 2 || got.LastError != "HTTP 500" || got.Generation != 1 ||
		got.LeaseOwner != "node-a" || !got.LeaseUntil.Equal(t0.Add(time.Minute)) || !got.NextAttempt.Equal(t0.Add(time.Second)) {
		t.Errorf("after UpdateWebhook: got %+v", got)
	}
	// A second dead letter of the same event replaces the first.
	update(t, s, func(tx gatehouse.Tx) error {
		for _, seq := range []int64{5, 6} {
			if err := tx.AddDeadLetter(&gatehouse.DeadLetter{Scope: "acme", WebhookID: "hook-1", Seq: seq, Type: "device.updated", Attempts: 9, LastError: "HTTP 503", Time: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	dls, err := s.ListDeadLetters(ctx, "acme", "hook-1", 0, 0)
	want := []*gatehouse.DeadLetter{
		{Scope: "acme", WebhookID: "hook-1", Seq: 5, Type: "device.updated", Attempts: 9, LastError: "HTTP 503", Time: t0},
		{Scope: "acme", WebhookID: "hook-1", Seq: 6, Type: "device.updated", Attempts: 9, LastError: "HTTP 503", Time: t0},
	}
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, dls, diffOpts...); d != "" {
		t.Errorf("ListDeadLetters (-want +got):\n%s", d)
	}
	if dls, _ := s.ListDeadLetters(ctx, "acme", "hook-1", 5, 1); len(dls) != 1 || dls[0].Seq != 6 {
		t.Errorf("ListDeadLetters after 5: got %v, want seq 6", dls)
	}
	err = s.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.AddDeadLetter(&gatehouse.DeadLetter{Scope: "acme", WebhookID: "missing", Seq: 1, Time: t0})
	})
	wantCode(t, "dead letter of a missing webhook", err, gatehouse.ENotFound)

	err = s.Update(ctx, func(tx gatehouse.Tx) error {
		return tx.UpdateWebhook(&gatehouse.EventHook{Scope: "acme", ID: "missing"})
	})
	wantCode(t, "update missing webhook", err, gatehouse.ENotFound)

	update(t, s, func(tx gatehouse.Tx) error { return tx.DeleteWebhook("acme", "hook-1") })
	_, err = s.GetWebhook(ctx, "acme", "hook-1")
	wantCode(t, "deleted webhook", err, gatehouse.ENotFound)
	if dls, _ := s.ListDeadLetters(ctx, "acme", "hook-1", 0, 0); len(dls) != 0 {
		t.Errorf("dead letters outlived their webhook: %v", dls)
	}
	err = s.Update(ctx, func(tx gatehouse.Tx) error { return tx.DeleteWebhook("acme", "hook-1") })
	wantCode(t, "delete missing webhook", err, gatehouse.ENotFound)
	// Recreating after delete starts clean.
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateWebhook(w) })
}

func testQueryEvents(t *testing.T, s gatehouse.Store) {
	ctx := context.Background()
	createScopes(t, s, "acme", "beta")
	base := now().Add(-time.Hour)
	type ev struct{ typ, actor, subject string }
	evs := []ev{
		{"device.created", "token:a", "devices/d1"},
		{"device.updated", "token:b", "devices/d1"},
		{"token.created", "token:a", "tokens/t1"},
		{"device.state_changed", "token:a", "devices/d2"},
		{"devices.imported", "token:b", "devices"},
	}
	update(t, s, func(tx gatehouse.Tx) error {
		for i, e := range evs {
			if err := tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: e.typ, Actor: e.actor, Subject: e.subject, Time: base.Add(time.Duration(i) * time.Minute)}); err != nil {
				return err
			}
		}
		return tx.AppendEvent(&gatehouse.Event{Scope: "beta", Type: "device.created", Actor: "token:a", Subject: "devices/d1", Time: base})
	})
	for _, tc := range []struct {
		name string
		f    gatehouse.EventFilter
		want []int64
	}{
		{"all", gatehouse.EventFilter{}, []int64{1, 2, 3, 4, 5}},
		{"actor", gatehouse.EventFilter{Actor: "token:a"}, []int64{1, 3, 4}},
		{"subject", gatehouse.EventFilter{Subject: "devices/d1"}, []int64{1, 2}},
		{"type", gatehouse.EventFilter{Type: "token.created"}, []int64{3}},
		{"type prefix", gatehouse.EventFilter{Type: "device.*"}, []int64{1, 2, 4}},
		{"since", gatehouse.EventFilter{Since: base.Add(3 * time.Minute)}, []int64{4, 5}},
		{"until", gatehouse.EventFilter{Until: base.Add(2 * time.Minute)}, []int64{1, 2}},
		{"actor and type, after, limit", gatehouse.EventFilter{Actor: "token:a", Type: "device.*", After: 1, Limit: 1}, []int64{4}},
		{"nothing", gatehouse.EventFilter{Actor: "token:z"}, nil},
	} {
		f := tc.f
		f.Scope = "acme"
		got, err := s.QueryEvents(ctx, f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !equalInts(seqs(got), tc.want) {
			t.Errorf("%s: got seqs %v, want %v", tc.name, seqs(got), tc.want)
		}
		for _, e := range got {
			if e.Scope != "acme" {
				t.Errorf("%s: event of scope %q", tc.name, e.Scope)
			}
		}
	}
}

func testCounts(t *testing.T, s gatehouse.Store) {
	ctx := context.Background()
	createScopes(t, s, "acme", "beta")
	var ds []*gatehouse.Device
	for i := range 7 {
		d := newDevice("acme", fmt.Sprintf("d%d", i), nil)
		if i%2 == 0 {
			d.Tags["site"] = "north"
		} else if i%3 == 0 {
			d.Tags["site"] = "south"
		}
		if i < 2 {
			d.State = gatehouse.StateActive
			d.Connection.Status = gatehouse.Online
		}
		ds = append(ds, d)
	}
	ds = append(ds, newDevice("beta", "x", map[string]string{"site": "north"}))
	createDevices(t, s, ds...)
	for _, tc := range []struct {
		by   gatehouse.DeviceCountBy
		want map[string]int64
	}{
		{"state", map[string]int64{"active": 2, "provisioned": 5}},
		{"connection", map[string]int64{"online": 2, "offline": 5}},
		{"tag:site", map[string]int64{"north": 4, "south": 1, "": 2}},
		{"tag:none", map[string]int64{"": 7}},
	} {
		got, err := s.CountDevices(ctx, "acme", tc.by)
		if err != nil {
			t.Fatalf("CountDevices(%s): %v", tc.by, err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("CountDevices(%s) (-want +got):\n%s", tc.by, d)
		}
	}
	if got, err := s.CountDevices(ctx, "empty", "state"); err != nil || len(got) != 0 {
		t.Errorf("CountDevices of an empty scope: got %v (err %v), want {}", got, err)
	}
	_, err := s.CountDevices(ctx, "acme", "color")
	wantCode(t, "count by color", err, gatehouse.EInvalid)
	all, err := s.CountAllDevices(ctx, "tag:site")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]int64{"acme": {"north": 4, "south": 1, "": 2}, "beta": {"north": 1}}
	if d := cmp.Diff(want, all); d != "" {
		t.Errorf("CountAllDevices (-want +got):\n%s", d)
	}

	// Credentials: active ones expiring in the window count.
	t0 := now()
	var cs []*gatehouse.Credential
	for i, days := range []int{1, 5, 13, 20, 3} {
		c := newCredential("acme", fmt.Sprintf("c%d", i), "d0")
		c.NotAfter = timePtr(t0.Add(time.Duration(days) * 24 * time.Hour))
		if i == 4 {
			c.Status = gatehouse.CredentialRevoked
		}
		cs = append(cs, c)
	}
	c := newCredential("beta", "c9", "x")
	c.NotAfter = timePtr(t0.Add(2 * time.Hour))
	cs = append(cs, c)
	createCredentials(t, s, cs...)
	exp, err := s.CountExpiringCredentials(ctx, t0, t0.Add(14*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]int64{"acme": 3, "beta": 1}, exp); d != "" {
		t.Errorf("CountExpiringCredentials (-want +got):\n%s", d)
	}
}
