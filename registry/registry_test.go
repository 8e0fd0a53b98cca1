package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/store/sqlite"
)

// fixture is a registry over a real SQLite store with a global admin and a
// fixed, stepping clock.
type fixture struct {
	reg   *registry.Service
	admin *gatehouse.Principal
	ctx   context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
	reg := registry.New(st, registry.WithClock(clock))
	ctx := context.Background()
	if err := reg.EnsureScope(ctx, gatehouse.DefaultScope); err != nil {
		t.Fatal(err)
	}
	grant, err := reg.CreateGlobalAdminToken(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := reg.Authenticate(ctx, grant.Secret)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{reg: reg, admin: admin, ctx: ctx}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := gatehouse.ErrorCode(err); got != code {
		t.Fatalf("got error %v (code %q), want code %q", err, got, code)
	}
}

func TestLifecycleHistoryAndEvents(t *testing.T) {
	f := newFixture(t)
	d, err := f.reg.CreateDevice(f.ctx, f.admin, "default", registry.DeviceCreate{ID: "d1", Tags: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.State != gatehouse.StateProvisioned || d.Connection.Status != gatehouse.Offline || string(d.Config) != "{}" {
		t.Fatalf("new device = %+v", d)
	}
	steps := []struct {
		to   gatehouse.State
		code string
	}{
		{gatehouse.StateActive, ""}, {gatehouse.StateProvisioned, gatehouse.EInvalidTransition},
		{gatehouse.StateInactive, ""}, {gatehouse.StateQuarantined, ""}, {gatehouse.StateActive, ""},
		{gatehouse.StateDecommissioned, ""}, {gatehouse.StateActive, gatehouse.EInvalidTransition},
	}
	etag := d.ETag
	for i, s := range steps {
		got, err := f.reg.SetState(f.ctx, f.admin, "default", "d1", s.to, fmt.Sprintf("step %d", i), "")
		wantCode(t, err, s.code)
		if err == nil {
			if got.ETag == etag {
				t.Errorf("step %d: etag unchanged", i)
			}
			etag = got.ETag
		}
	}
	h, err := f.reg.DeviceHistory(f.ctx, f.admin, "default", "d1")
	if err != nil {
		t.Fatal(err)
	}
	wantTo := []gatehouse.State{"provisioned", "active", "inactive", "quarantined", "active", "decommissioned"}
	if len(h) != len(wantTo) {
		t.Fatalf("history has %d entries, want %d: %+v", len(h), len(wantTo), h)
	}
	for i, c := range h {
		if c.To != wantTo[i] || c.Actor != f.admin.Actor() || c.Time.IsZero() {
			t.Errorf("history[%d] = %+v, want to=%s actor=%s", i, c, wantTo[i], f.admin.Actor())
		}
		if i > 0 && (c.From != wantTo[i-1] || !c.Time.After(h[i-1].Time)) {
			t.Errorf("history[%d] = %+v does not follow %+v", i, c, h[i-1])
		}
	}
	// Refused transitions wrote no event: the log is gap-free and holds
	// exactly the successful changes.
	evs, err := f.reg.Events(f.ctx, f.admin, "default", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		types = append(types, e.Type)
	}
	want := []string{"scope.created", "device.created", "device.state_changed", "device.state_changed",
		"device.state_changed", "device.state_changed", "device.state_changed"}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Errorf("events = %v, want %v", types, want)
	}
	var data map[string]string
	json.Unmarshal(evs[2].Data, &data)
	if data["from"] != "provisioned" || data["to"] != "active" || data["reason"] != "step 0" {
		t.Errorf("state_changed data = %s", evs[2].Data)
	}
}

// TestConcurrentIfMatch: of many writers holding the same etag, exactly one
// wins; the others get precondition_failed.
func TestConcurrentIfMatch(t *testing.T) {
	f := newFixture(t)
	d, err := f.reg.CreateDevice(f.ctx, f.admin, "default", registry.DeviceCreate{ID: "race"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _ := gatehouse.ParseDevicePatch([]byte(fmt.Sprintf(`{"tags":{"w":"%d"}}`, i)))
			_, errs[i] = f.reg.PatchDevice(f.ctx, f.admin, "default", "race", p, `"`+d.ETag+`"`)
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch gatehouse.ErrorCode(err) {
		case "":
			wins++
		case gatehouse.EPreconditionFailed:
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d writers won with the same etag, want exactly 1", wins)
	}
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	if _, err := f.reg.CreateScope(f.ctx, f.admin, "acme"); err != nil {
		t.Fatal(err)
	}
	grant, err := f.reg.CreateToken(f.ctx, f.admin, "acme", registry.TokenRequest{Name: "ops", Role: gatehouse.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.reg.Authenticate(f.ctx, grant.Secret)
	if err != nil || p.Scope != "acme" || p.Role != gatehouse.RoleOperator {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	forged := grant.Secret[:len(grant.Secret)-2] + "xx"
	other, _ := gatehouse.NewTokenSecret()
	for _, bad := range []string{"", "nonsense", forged, other} {
		_, err := f.reg.Authenticate(f.ctx, bad)
		wantCode(t, err, gatehouse.EUnauthenticated)
	}
	// A scoped operator may not create scopes or tokens, nor touch another scope.
	_, err = f.reg.CreateScope(f.ctx, p, "evil")
	wantCode(t, err, gatehouse.EForbidden)
	_, err = f.reg.CreateToken(f.ctx, p, "acme", registry.TokenRequest{Name: "x", Role: gatehouse.RoleAdmin})
	wantCode(t, err, gatehouse.EForbidden)
	_, err = f.reg.CreateDevice(f.ctx, p, "default", registry.DeviceCreate{ID: "x"})
	wantCode(t, err, gatehouse.ENotFound)
	if err := f.reg.RevokeToken(f.ctx, f.admin, "acme", grant.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.reg.Authenticate(f.ctx, grant.Secret)
	wantCode(t, err, gatehouse.EUnauthenticated)
	// Revoking again is a no-op: no second event.
	evs, _ := f.reg.Events(f.ctx, f.admin, "acme", 0, 100)
	if err := f.reg.RevokeToken(f.ctx, f.admin, "acme", grant.ID); err != nil {
		t.Fatal(err)
	}
	if again, _ := f.reg.Events(f.ctx, f.admin, "acme", 0, 100); len(again) != len(evs) {
		t.Errorf("second revocation wrote an event: %d -> %d", len(evs), len(again))
	}
	// A token of another scope cannot be revoked through this one.
	wantCode(t, f.reg.RevokeToken(f.ctx, f.admin, "default", grant.ID), gatehouse.ENotFound)
}

func TestAdoptGlobalAdminToken(t *testing.T) {
	f := newFixture(t)
	tok, _ := gatehouse.NewTokenSecret()
	if _, err := f.reg.Authenticate(f.ctx, tok); err == nil {
		t.Fatal("unknown token authenticated")
	}
	for range 2 { // idempotent
		if err := f.reg.AdoptGlobalAdminToken(f.ctx, tok, "file"); err != nil {
			t.Fatal(err)
		}
	}
	p, err := f.reg.Authenticate(f.ctx, tok)
	if err != nil || !p.Global() {
		t.Fatalf("adopted token: %+v, %v", p, err)
	}
	wantCode(t, f.reg.AdoptGlobalAdminToken(f.ctx, "not-a-token", "file"), gatehouse.EInvalid)
}

func TestDeleteRules(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"fresh", "used", "retired"} {
		if _, err := f.reg.CreateDevice(f.ctx, f.admin, "default", registry.DeviceCreate{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	mustState := func(id string, s gatehouse.State) {
		if _, err := f.reg.SetState(f.ctx, f.admin, "default", id, s, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	mustState("used", gatehouse.StateActive)
	mustState("retired", gatehouse.StateActive)
	mustState("retired", gatehouse.StateDecommissioned)
	if err := f.reg.DeleteDevice(f.ctx, f.admin, "default", "fresh", ""); err != nil {
		t.Errorf("delete never-seen provisioned device: %v", err)
	}
	wantCode(t, f.reg.DeleteDevice(f.ctx, f.admin, "default", "used", ""), gatehouse.EConflict)
	wantCode(t, f.reg.DeleteDevice(f.ctx, f.admin, "default", "retired", `"wrong"`), gatehouse.EPreconditionFailed)
	if err := f.reg.DeleteDevice(f.ctx, f.admin, "default", "retired", ""); err != nil {
		t.Errorf("delete decommissioned device: %v", err)
	}
	wantCode(t, f.reg.DeleteDevice(f.ctx, f.admin, "default", "retired", ""), gatehouse.ENotFound)
	_, err := f.reg.DeviceHistory(f.ctx, f.admin, "default", "retired")
	wantCode(t, err, gatehouse.ENotFound)
}

func TestListValidation(t *testing.T) {
	f := newFixture(t)
	for i := range 5 {
		if _, err := f.reg.CreateDevice(f.ctx, f.admin, "default", registry.DeviceCreate{ID: fmt.Sprintf("d%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		q    registry.DeviceQuery
		code string
	}{
		{"limit too big", registry.DeviceQuery{Limit: registry.MaxPageSize + 1}, gatehouse.EInvalid},
		{"negative limit", registry.DeviceQuery{Limit: -1}, gatehouse.EInvalid},
		{"bad cursor", registry.DeviceQuery{Cursor: "zzz"}, gatehouse.EInvalidCursor},
		{"bad state", registry.DeviceQuery{States: []gatehouse.State{"gone"}}, gatehouse.EInvalid},
		{"bad connection", registry.DeviceQuery{Connection: "maybe"}, gatehouse.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.reg.ListDevices(f.ctx, f.admin, "default", tt.q)
			wantCode(t, err, tt.code)
		})
	}
	var seen []string
	cursor := ""
	for {
		page, err := f.reg.ListDevices(f.ctx, f.admin, "default", registry.DeviceQuery{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Items {
			seen = append(seen, d.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if fmt.Sprint(seen) != "[d0 d1 d2 d3 d4]" {
		t.Errorf("paged ids = %v", seen)
	}
	_, err := f.reg.ListDevices(f.ctx, f.admin, "nope", registry.DeviceQuery{})
	wantCode(t, err, gatehouse.ENotFound)
}

func TestEventSignal(t *testing.T) {
	f := newFixture(t)
	sig := f.reg.EventSignal("default")
	select {
	case <-sig:
		t.Fatal("signal closed before any commit")
	default:
	}
	if _, err := f.reg.CreateDevice(f.ctx, f.admin, "default", registry.DeviceCreate{ID: "s1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sig:
	case <-time.After(5 * time.Second):
		t.Fatal("signal not closed after a commit")
	}
}

func TestEmptyPatchWritesNothing(t *testing.T) {
	f := newFixture(t)
	d, err := f.reg.CreateDevice(f.ctx, f.admin, "default", registry.DeviceCreate{ID: "e", Tags: map[string]string{"a": "b"}, Config: json.RawMessage("null")})
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Config) != "{}" {
		t.Errorf("config null created %s, want {}", d.Config)
	}
	for _, body := range []string{`{}`, `{"tags":{"a":"b"}}`, `{"config":{}}`} {
		p, err := gatehouse.ParseDevicePatch([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.reg.PatchDevice(f.ctx, f.admin, "default", "e", p, "")
		if err != nil || got.ETag != d.ETag {
			t.Errorf("no-op patch %s: etag %q -> %q, %v", body, d.ETag, got.ETag, err)
		}
	}
	evs, _ := f.reg.Events(f.ctx, f.admin, "default", 0, 100)
	if last := evs[len(evs)-1]; last.Type != gatehouse.EventDeviceCreated {
		t.Errorf("last event %s, want device.created (no-op patches write none)", last.Type)
	}
}

func TestPresenceAndFollow(t *testing.T) {
	f := newFixture(t)
	if _, err := f.reg.CreateDevice(f.ctx, f.admin, "default", registry.DeviceCreate{ID: "p1"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	got := make(chan *gatehouse.Event, 100)
	go f.reg.FollowEvents(ctx, 50*time.Millisecond, func(e *gatehouse.Event) { got <- e })
	time.Sleep(100 * time.Millisecond)
	before, _ := f.reg.GetDevice(f.ctx, f.admin, "default", "p1")
	f.reg.DeviceConnected("default", "p1", "mqtt")
	if err := f.reg.FlushPresence(f.ctx); err != nil {
		t.Fatal(err)
	}
	d, _ := f.reg.GetDevice(f.ctx, f.admin, "default", "p1")
	if d.Connection.Status != gatehouse.Online || d.Connection.LastSeen == nil || d.State != gatehouse.StateActive {
		t.Fatalf("after connect: %+v", d)
	}
	if d.ETag == before.ETag {
		t.Error("first contact (a state change) kept the etag")
	}
	f.reg.DeviceDisconnected("default", "p1", "mqtt")
	f.reg.FlushPresence(f.ctx)
	d2, _ := f.reg.GetDevice(f.ctx, f.admin, "default", "p1")
	if d2.Connection.Status != gatehouse.Offline || d2.ETag != d.ETag {
		t.Errorf("after disconnect: %+v (presence alone must keep the etag)", d2)
	}
	if err := f.reg.ReportProperties(f.ctx, "default", "p1", json.RawMessage(`{"fw":"1.2","temp":null}`)); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.reg.ReportProperties(f.ctx, "default", "p1", json.RawMessage(`[1]`)), gatehouse.EInvalid)
	d3, _ := f.reg.GetDevice(f.ctx, f.admin, "default", "p1")
	if string(d3.Reported) != `{"fw":"1.2"}` {
		t.Errorf("reported = %s", d3.Reported)
	}
	var types []string
	timeout := time.After(3 * time.Second)
	for len(types) < 4 {
		select {
		case e := <-got:
			types = append(types, e.Type)
		case <-timeout:
			t.Fatalf("followed events: %v", types)
		}
	}
	want := "[device.state_changed device.connected device.disconnected device.reported]"
	if fmt.Sprint(types) != want {
		t.Errorf("followed %v, want %s", types, want)
	}
}
