package adminclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

// node is a real Gatehouse server on a loopback port.
type node struct {
	srv   *server.Server
	dir   string
	admin *adminclient.Client // with the installation admin token
}

func startNode(t *testing.T) *node {
	t.Helper()
	n := &node{dir: t.TempDir()}
	n.start(t, "127.0.0.1:0")
	b, err := os.ReadFile(filepath.Join(n.dir, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	n.admin = n.client(t, strings.TrimSpace(string(b)))
	return n
}

// start (re)starts the server on addr.
func (n *node) start(t *testing.T, addr string) {
	t.Helper()
	srv, err := server.Start(context.Background(), server.Config{DataDir: n.dir, HTTPAddr: addr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	n.srv = srv
}

// client returns a client of the node trusting its CA.
func (n *node) client(t *testing.T, token string, opts ...adminclient.Option) *adminclient.Client {
	t.Helper()
	opts = append([]adminclient.Option{adminclient.WithCAFile(filepath.Join(n.dir, server.CAFile))}, opts...)
	c, err := adminclient.New(n.srv.URL(), token, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// wantCode fails unless err carries code, both as an *APIError and through
// gatehouse.ErrorCode.
func wantCode(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var ae *adminclient.APIError
	if !errors.As(err, &ae) {
		t.Errorf("%s: err = %v, want an *APIError %s", what, err, code)
		return
	}
	if ae.Status != status || ae.Code != code || ae.Message == "" {
		t.Errorf("%s: got {%d %q %q}, want status %d, code %q and a message", what, ae.Status, ae.Code, ae.Message, status, code)
	}
	if got := gatehouse.ErrorCode(err); got != code {
		t.Errorf("%s: gatehouse.ErrorCode = %q, want %q", what, got, code)
	}
}

func TestHealth(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	if err := n.admin.Health(ctx); err != nil {
		t.Errorf("Health: %v", err)
	}
	if err := n.admin.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
	doc, err := n.admin.OpenAPI(ctx)
	if err != nil || !json.Valid(doc) || !strings.Contains(string(doc), "/v1/scopes") {
		t.Errorf("OpenAPI: %v, %.80s", err, doc)
	}
	// Without the CA the server's certificate is untrusted.
	c, _ := adminclient.New(n.srv.URL(), "gh_x")
	var te *adminclient.TransportError
	if err := c.Health(ctx); !errors.As(err, &te) || !te.Certificate() {
		t.Errorf("Health without the CA: %v, want a certificate TransportError", err)
	}
	// A token that is no token.
	_, err = n.client(t, "not-a-token").ListScopes(ctx)
	wantCode(t, "bad token", err, 401, gatehouse.EUnauthenticated)
}

func TestScopesAndTokens(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	admin := n.admin

	sc, err := admin.CreateScope(ctx, "acme")
	if err != nil || sc.ID != "acme" || sc.CreatedAt.IsZero() {
		t.Fatalf("CreateScope = %+v, %v", sc, err)
	}
	_, err = admin.CreateScope(ctx, "acme")
	wantCode(t, "CreateScope twice", err, 409, gatehouse.EConflict)
	_, err = admin.CreateScope(ctx, "Bad_Scope")
	wantCode(t, "CreateScope bad id", err, 400, gatehouse.EInvalidID)

	scopes, err := admin.ListScopes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range scopes {
		ids = append(ids, s.ID)
	}
	if !slices.Contains(ids, "acme") || !slices.Contains(ids, gatehouse.DefaultScope) {
		t.Errorf("ListScopes = %v, want acme and default", ids)
	}
	if got, err := admin.GetScope(ctx, "acme"); err != nil || got.ID != "acme" {
		t.Errorf("GetScope = %+v, %v", got, err)
	}
	_, err = admin.GetScope(ctx, "nope")
	wantCode(t, "GetScope missing", err, 404, gatehouse.ENotFound)

	g, err := admin.CreateToken(ctx, "acme", registry.TokenRequest{Name: "ci", Role: gatehouse.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(g.Secret, "gh_") || g.ID == "" || g.Scope != "acme" || g.Role != gatehouse.RoleViewer || g.Name != "ci" || g.CreatedBy == "" {
		t.Errorf("CreateToken = %+v (%+v)", g, g.Token)
	}
	_, err = admin.CreateToken(ctx, "acme", registry.TokenRequest{Name: "x", Role: "root"})
	wantCode(t, "CreateToken bad role", err, 400, gatehouse.EInvalid)

	tokens, err := admin.ListTokens(ctx, "acme")
	if err != nil || len(tokens) != 1 || tokens[0].ID != g.ID || tokens[0].RevokedAt != nil {
		t.Fatalf("ListTokens = %+v, %v", tokens, err)
	}

	// The viewer may read its scope, not write to it, and not see others.
	viewer := n.client(t, g.Secret)
	if _, err := viewer.ListDevices(ctx, "acme", adminclient.ListOptions{}); err != nil {
		t.Errorf("viewer ListDevices: %v", err)
	}
	_, err = viewer.CreateDevice(ctx, "acme", registry.DeviceCreate{ID: "d1"})
	wantCode(t, "viewer CreateDevice", err, 403, gatehouse.EForbidden)
	_, err = viewer.GetScope(ctx, gatehouse.DefaultScope)
	wantCode(t, "viewer GetScope of another scope", err, 404, gatehouse.ENotFound)
	_, err = viewer.CreateScope(ctx, "other")
	wantCode(t, "viewer CreateScope", err, 403, gatehouse.EForbidden)

	if err := admin.RevokeToken(ctx, "acme", g.ID); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	err = admin.RevokeToken(ctx, "acme", "nosuchtoken")
	wantCode(t, "RevokeToken missing", err, 404, gatehouse.ENotFound)
	tokens, _ = admin.ListTokens(ctx, "acme")
	if len(tokens) != 1 || tokens[0].RevokedAt == nil {
		t.Errorf("after revoking, ListTokens = %+v", tokens)
	}
	_, err = viewer.ListScopes(ctx)
	wantCode(t, "revoked token", err, 401, gatehouse.EUnauthenticated)
}

func TestDevices(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	c := n.admin
	const scope = gatehouse.DefaultScope

	d, err := c.CreateDevice(ctx, scope, registry.DeviceCreate{ID: "sensor-1", Tags: map[string]string{"site": "berlin", "model": "t1"},
		Config: json.RawMessage(`{"interval":60,"debug":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "sensor-1" || d.Scope != scope || d.State != gatehouse.StateProvisioned || d.ETag == "" ||
		d.Connection.Status != gatehouse.Offline || d.Tags["site"] != "berlin" {
		t.Errorf("CreateDevice = %+v", d)
	}
	_, err = c.CreateDevice(ctx, scope, registry.DeviceCreate{ID: "sensor-1"})
	wantCode(t, "CreateDevice twice", err, 409, gatehouse.EConflict)
	_, err = c.CreateDevice(ctx, scope, registry.DeviceCreate{ID: "Sensor 1"})
	wantCode(t, "CreateDevice bad id", err, 400, gatehouse.EInvalidID)
	_, err = c.CreateDevice(ctx, "nope", registry.DeviceCreate{ID: "x"})
	wantCode(t, "CreateDevice in a missing scope", err, 404, gatehouse.ENotFound)

	got, err := c.GetDevice(ctx, scope, "sensor-1")
	if err != nil || got.ETag != d.ETag || string(got.Config) != `{"interval":60,"debug":true}` {
		t.Errorf("GetDevice = %+v, %v", got, err)
	}
	_, err = c.GetDevice(ctx, scope, "nope")
	wantCode(t, "GetDevice missing", err, 404, gatehouse.ENotFound)

	// Patch: tags merged, a tag and a config key removed; If-Match honoured.
	p, err := c.PatchDevice(ctx, scope, "sensor-1", json.RawMessage(`{"tags":{"site":"munich","model":null},"config":{"debug":null}}`), d.ETag)
	if err != nil {
		t.Fatal(err)
	}
	if p.Tags["site"] != "munich" || len(p.Tags) != 1 || string(p.Config) != `{"interval":60}` || p.ETag == d.ETag {
		t.Errorf("PatchDevice = tags %v config %s etag %s", p.Tags, p.Config, p.ETag)
	}
	_, err = c.PatchDevice(ctx, scope, "sensor-1", json.RawMessage(`{"tags":{"x":"y"}}`), d.ETag)
	wantCode(t, "PatchDevice with a stale etag", err, 412, gatehouse.EPreconditionFailed)
	_, err = c.PatchDevice(ctx, scope, "sensor-1", json.RawMessage(`{"state":"active"}`), "")
	wantCode(t, "PatchDevice of state", err, 400, gatehouse.EUnknownField)

	// Lifecycle.
	a, err := c.SetState(ctx, scope, "sensor-1", gatehouse.StateActive, "commissioned", p.ETag)
	if err != nil || a.State != gatehouse.StateActive {
		t.Fatalf("SetState = %+v, %v", a, err)
	}
	_, err = c.SetState(ctx, scope, "sensor-1", gatehouse.StateInactive, "", p.ETag)
	wantCode(t, "SetState with a stale etag", err, 412, gatehouse.EPreconditionFailed)
	_, err = c.SetState(ctx, scope, "sensor-1", gatehouse.StateProvisioned, "", "")
	wantCode(t, "SetState back to provisioned", err, 409, gatehouse.EInvalidTransition)
	if _, err := c.SetState(ctx, scope, "sensor-1", gatehouse.StateDecommissioned, "retired", ""); err != nil {
		t.Fatal(err)
	}
	h, err := c.DeviceHistory(ctx, scope, "sensor-1")
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, ch := range h {
		steps = append(steps, fmt.Sprintf("%s>%s:%s", ch.From, ch.To, ch.Reason))
	}
	if want := ">provisioned:created,provisioned>active:commissioned,active>decommissioned:retired"; strings.Join(steps, ",") != want {
		t.Errorf("DeviceHistory = %q, want %q", strings.Join(steps, ","), want)
	}

	// Listing: filters and pages.
	for i := range 5 {
		tags := map[string]string{"site": "berlin"}
		if i%2 == 0 {
			tags["site"] = "paris"
		}
		if _, err := c.CreateDevice(ctx, scope, registry.DeviceCreate{ID: fmt.Sprintf("d-%d", i), Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	listIDs := func(opts adminclient.ListOptions) string {
		t.Helper()
		page, err := c.ListDevices(ctx, scope, opts)
		if err != nil {
			t.Fatalf("ListDevices(%+v): %v", opts, err)
		}
		var ids []string
		for _, d := range page.Items {
			ids = append(ids, d.ID)
		}
		return strings.Join(ids, ",")
	}
	tests := []struct {
		opts adminclient.ListOptions
		want string
	}{
		{adminclient.ListOptions{}, "d-0,d-1,d-2,d-3,d-4,sensor-1"},
		{adminclient.ListOptions{States: []gatehouse.State{gatehouse.StateDecommissioned}}, "sensor-1"},
		{adminclient.ListOptions{States: []gatehouse.State{gatehouse.StateProvisioned, gatehouse.StateDecommissioned}, Tags: []string{"site in (munich,berlin)"}}, "d-1,d-3,sensor-1"},
		{adminclient.ListOptions{Tags: []string{"site=paris"}}, "d-0,d-2,d-4"},
		{adminclient.ListOptions{Tags: []string{"site!=paris", "site"}}, "d-1,d-3,sensor-1"},
		{adminclient.ListOptions{Connection: gatehouse.Online}, ""},
	}
	for _, tt := range tests {
		if got := listIDs(tt.opts); got != tt.want {
			t.Errorf("ListDevices(%+v) = %q, want %q", tt.opts, got, tt.want)
		}
	}
	_, err = c.ListDevices(ctx, scope, adminclient.ListOptions{Tags: []string{"site in"}})
	wantCode(t, "ListDevices bad selector", err, 400, gatehouse.EInvalidSelector)
	_, err = c.ListDevices(ctx, scope, adminclient.ListOptions{Cursor: "garbage!"})
	wantCode(t, "ListDevices bad cursor", err, 400, gatehouse.EInvalidCursor)

	page, err := c.ListDevices(ctx, scope, adminclient.ListOptions{Limit: 4})
	if err != nil || len(page.Items) != 4 || page.NextCursor == "" {
		t.Fatalf("first page = %d items, cursor %q, %v", len(page.Items), page.NextCursor, err)
	}
	if got := listIDs(adminclient.ListOptions{Limit: 4, Cursor: page.NextCursor}); got != "d-4,sensor-1" {
		t.Errorf("second page = %q", got)
	}
	var all []string
	for d, err := range c.Devices(ctx, scope, adminclient.ListOptions{Limit: 2, Tags: []string{"site"}}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, d.ID)
	}
	if strings.Join(all, ",") != "d-0,d-1,d-2,d-3,d-4,sensor-1" {
		t.Errorf("Devices = %v", all)
	}

	// Delete: a never-seen device at once, with If-Match honoured.
	d0, _ := c.GetDevice(ctx, scope, "d-0")
	err = c.DeleteDevice(ctx, scope, "d-0", "stale")
	wantCode(t, "DeleteDevice with a stale etag", err, 412, gatehouse.EPreconditionFailed)
	if err := c.DeleteDevice(ctx, scope, "d-0", d0.ETag); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteDevice(ctx, scope, "sensor-1", ""); err != nil {
		t.Fatalf("delete a decommissioned device: %v", err)
	}
	err = c.DeleteDevice(ctx, scope, "d-0", "")
	wantCode(t, "DeleteDevice twice", err, 404, gatehouse.ENotFound)
	_, err = c.DeviceHistory(ctx, scope, "d-0")
	wantCode(t, "DeviceHistory of a deleted device", err, 404, gatehouse.ENotFound)
}

func TestEvents(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	c := n.admin
	c.CreateDevice(ctx, "default", registry.DeviceCreate{ID: "a"})
	c.CreateDevice(ctx, "default", registry.DeviceCreate{ID: "b"})

	evs, err := c.Events(ctx, "default", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i, e := range evs {
		if e.Seq != int64(i+1) || e.Scope != "default" {
			t.Errorf("event %d: seq %d scope %q", i, e.Seq, e.Scope)
		}
		types = append(types, e.Type+" "+e.Subject)
	}
	if want := []string{"scope.created scopes/default", "ca.created scopes/default/ca", "device.created devices/a", "device.created devices/b"}; !slices.Equal(types, want) {
		t.Errorf("Events = %q, want %q", types, want)
	}
	if evs, err := c.Events(ctx, "default", 3, 5); err != nil || len(evs) != 1 || evs[0].Seq != 4 {
		t.Errorf("Events after 3 = %v, %v", evs, err)
	}
	_, err = c.Events(ctx, "default", 0, 5000)
	wantCode(t, "Events limit too high", err, 400, gatehouse.EInvalid)
	_, err = c.Events(ctx, "nope", 0, 0)
	wantCode(t, "Events of a missing scope", err, 404, gatehouse.ENotFound)
	err = c.StreamEvents(ctx, "nope", 0, func(*gatehouse.Event) error { return nil })
	wantCode(t, "StreamEvents of a missing scope", err, 404, gatehouse.ENotFound)
}

// TestStreamEventsAcrossRestart follows the log live, restarts the server
// under the stream, and checks that the stream resumes without a gap or a
// repeat.
func TestStreamEventsAcrossRestart(t *testing.T) {
	n := startNode(t)
	c := n.client(t, tokenOf(t, n), adminclient.WithStreamBackoff(10*time.Millisecond, 100*time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	got := make(chan *gatehouse.Event, 100)
	done := make(chan error, 1)
	go func() {
		// After the bootstrap's scope.created and ca.created.
		done <- c.StreamEvents(ctx, "default", 2, func(e *gatehouse.Event) error { got <- e; return nil })
	}()
	next := func() *gatehouse.Event {
		t.Helper()
		select {
		case e := <-got:
			return e
		case err := <-done:
			t.Fatalf("stream ended: %v", err)
		case <-ctx.Done():
			t.Fatal("timed out waiting for an event")
		}
		return nil
	}

	n.admin.CreateDevice(ctx, "default", registry.DeviceCreate{ID: "live-1"})
	if e := next(); e.Seq != 3 || e.Type != gatehouse.EventDeviceCreated || e.Subject != "devices/live-1" {
		t.Errorf("first streamed event = %+v", e)
	}

	addr := n.srv.Addr().String()
	if err := n.srv.Close(); err != nil {
		t.Fatal(err)
	}
	n.start(t, addr) // same data dir, same port
	n.admin.CreateDevice(ctx, "default", registry.DeviceCreate{ID: "live-2"})
	if e := next(); e.Seq != 4 || e.Subject != "devices/live-2" {
		t.Errorf("event after the restart = %+v", e)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("StreamEvents returned %v, want context.Canceled", err)
	}
	select {
	case e := <-got:
		t.Errorf("unexpected extra event %+v", e)
	default:
	}
}

func tokenOf(t *testing.T, n *node) string {
	b, err := os.ReadFile(filepath.Join(n.dir, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
