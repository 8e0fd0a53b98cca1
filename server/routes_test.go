package server_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEveryRoute walks the admin API contract end to end over HTTPS.
func TestEveryRoute(t *testing.T) {
	n := startNode(t, t.TempDir())
	a := n.admin
	n.must(a, "POST", "/v1/scopes", `{"id":"acme"}`, 201)
	if m := n.must(a, "GET", "/v1/scopes", "", 200); len(m["items"].([]any)) != 2 {
		t.Errorf("scopes = %v, want default and acme", m)
	}
	n.must(a, "GET", "/v1/scopes/acme", "", 200)
	g := n.must(a, "POST", "/v1/scopes/acme/tokens", `{"name":"ci","role":"viewer"}`, 201)
	if g["token"] == "" || g["role"] != "viewer" {
		t.Fatalf("token grant = %v", g)
	}
	toks := n.must(a, "GET", "/v1/scopes/acme/tokens", "", 200)
	if items := toks["items"].([]any); len(items) != 1 || strings.Contains(toString(items), g["token"].(string)) {
		t.Errorf("token list = %v (must list one token without its secret)", items)
	}

	code, d, h := n.do(a, "POST", "/v1/scopes/acme/devices", `{"id":"dev-1","tags":{"site":"north"},"config":{"rate":5}}`)
	if code != 201 || h.Get("ETag") == "" || d["state"] != "provisioned" {
		t.Fatalf("create: %d %v etag=%q", code, d, h.Get("ETag"))
	}
	n.must(a, "POST", "/v1/scopes/acme/devices", `{"id":"dev-2","tags":{"site":"south"}}`, 201)
	n.must(a, "POST", "/v1/scopes/acme/devices", `{"id":"dev-1"}`, 409)
	etag := h.Get("ETag")
	n.must(a, "PATCH", "/v1/scopes/acme/devices/dev-1", `{"tags":{"fw":"2"}}`, 412, "If-Match", `"stale"`)
	p := n.must(a, "PATCH", "/v1/scopes/acme/devices/dev-1", `{"tags":{"fw":"2"},"config":{"rate":null}}`, 200, "If-Match", etag)
	if p["tags"].(map[string]any)["fw"] != "2" || len(p["config"].(map[string]any)) != 0 {
		t.Errorf("patched = %v", p)
	}
	if l := n.must(a, "GET", "/v1/scopes/acme/devices?tag=site=north", "", 200); len(l["items"].([]any)) != 1 {
		t.Errorf("tag filter: %v", l)
	}
	page := n.must(a, "GET", "/v1/scopes/acme/devices?limit=1", "", 200)
	next, _ := page["nextCursor"].(string)
	if next == "" {
		t.Fatal("no nextCursor with limit=1 and two devices")
	}
	page2 := n.must(a, "GET", "/v1/scopes/acme/devices?limit=1&cursor="+next, "", 200)
	if id := page2["items"].([]any)[0].(map[string]any)["id"]; id != "dev-2" {
		t.Errorf("second page = %v", id)
	}
	n.must(a, "POST", "/v1/scopes/acme/devices/dev-1/state", `{"state":"active","reason":"install"}`, 200)
	if _, m, _ := n.do(a, "POST", "/v1/scopes/acme/devices/dev-1/state", `{"state":"provisioned"}`); m["code"] != "invalid_transition" {
		t.Errorf("active->provisioned: %v", m)
	}
	hist := n.must(a, "GET", "/v1/scopes/acme/devices/dev-1/history", "", 200)["items"].([]any)
	last := hist[len(hist)-1].(map[string]any)
	if last["from"] != "provisioned" || last["to"] != "active" || last["reason"] != "install" || last["actor"] == "" || last["time"] == "" {
		t.Errorf("history = %v", hist)
	}
	n.must(a, "DELETE", "/v1/scopes/acme/devices/dev-1", "", 409) // active: decommission first
	n.must(a, "DELETE", "/v1/scopes/acme/devices/dev-2", "", 204) // never seen
	n.must(a, "GET", "/v1/scopes/acme/devices/dev-2", "", 404)
	n.must(a, "POST", "/v1/scopes/acme/devices/dev-1/state", `{"state":"decommissioned","reason":"eol"}`, 200)
	n.must(a, "DELETE", "/v1/scopes/acme/devices/dev-1", "", 204)

	ev := n.must(a, "GET", "/v1/scopes/acme/events?after=0&limit=100", "", 200)["items"].([]any)
	want := []string{"scope.created", "ca.created", "token.created", "device.created", "device.created", "device.updated",
		"device.state_changed", "device.deleted", "device.state_changed", "device.deleted"}
	if len(ev) != len(want) {
		t.Fatalf("got %d events, want %d: %v", len(ev), len(want), ev)
	}
	for i, e := range ev {
		m := e.(map[string]any)
		if m["type"] != want[i] || int(m["seq"].(float64)) != i+1 {
			t.Errorf("event %d = %v %v, want %s seq %d", i, m["type"], m["seq"], want[i], i+1)
		}
	}
	tokID := g["id"].(string)
	n.must(a, "DELETE", "/v1/scopes/acme/tokens/"+tokID, "", 204)
	n.must(g["token"].(string), "GET", "/v1/scopes/acme/devices", "", 401)
}

func toString(v any) string {
	var b strings.Builder
	for _, x := range v.([]any) {
		for _, val := range x.(map[string]any) {
			if s, ok := val.(string); ok {
				b.WriteString(s)
			}
		}
	}
	return b.String()
}

// TestCrossScopeDenial: a token of one scope, even an admin one, gets 403 or
// 404 on every route of another scope, and changes nothing there.
func TestCrossScopeDenial(t *testing.T) {
	n := startNode(t, t.TempDir())
	a := n.admin
	n.must(a, "POST", "/v1/scopes", `{"id":"other"}`, 201)
	intruder := n.must(a, "POST", "/v1/scopes/other/tokens", `{"name":"x","role":"admin"}`, 201)["token"].(string)
	viewer := n.must(a, "POST", "/v1/scopes/other/tokens", `{"name":"v","role":"viewer"}`, 201)["token"].(string)
	n.must(a, "POST", "/v1/scopes/default/devices", `{"id":"victim","tags":{"k":"v"}}`, 201)
	tokID := n.must(a, "POST", "/v1/scopes/default/tokens", `{"name":"d","role":"viewer"}`, 201)["id"].(string)
	before := n.must(a, "GET", "/v1/scopes/default/devices/victim", "", 200)

	routes := []struct{ method, path, body string }{
		{"GET", "/v1/scopes/default", ""},
		{"POST", "/v1/scopes/default/tokens", `{"name":"evil","role":"admin"}`},
		{"GET", "/v1/scopes/default/tokens", ""},
		{"DELETE", "/v1/scopes/default/tokens/" + tokID, ""},
		{"POST", "/v1/scopes/default/devices", `{"id":"planted"}`},
		{"GET", "/v1/scopes/default/devices", ""},
		{"GET", "/v1/scopes/default/devices/victim", ""},
		{"PATCH", "/v1/scopes/default/devices/victim", `{"tags":{"k":"evil"}}`},
		{"POST", "/v1/scopes/default/devices/victim/state", `{"state":"quarantined"}`},
		{"GET", "/v1/scopes/default/devices/victim/history", ""},
		{"DELETE", "/v1/scopes/default/devices/victim", ""},
		{"GET", "/v1/scopes/default/events?after=0", ""},
		{"POST", "/v1/scopes", `{"id":"evil"}`},
	}
	for _, r := range routes {
		code, m, _ := n.do(intruder, r.method, r.path, r.body)
		if code != 403 && code != 404 {
			t.Errorf("intruder %s %s: got %d %v, want 403 or 404", r.method, r.path, code, m)
		}
	}
	code, _, _ := n.do(intruder, "GET", "/v1/scopes/default/events", "", "Accept", "text/event-stream")
	if code != 404 && code != 403 {
		t.Errorf("intruder event stream: got %d", code)
	}
	after := n.must(a, "GET", "/v1/scopes/default/devices/victim", "", 200)
	if after["etag"] != before["etag"] {
		t.Error("victim device changed")
	}
	n.must(a, "GET", "/v1/scopes/default/devices/planted", "", 404)
	if l := n.must(intruder, "GET", "/v1/scopes", "", 200)["items"].([]any); len(l) != 1 {
		t.Errorf("intruder sees %d scopes, want only its own", len(l))
	}
	// A viewer of its own scope may read but not write.
	n.must(viewer, "GET", "/v1/scopes/other/devices", "", 200)
	n.must(viewer, "POST", "/v1/scopes/other/devices", `{"id":"v-1"}`, 403)
	n.must(viewer, "POST", "/v1/scopes/other/tokens", `{"name":"y","role":"viewer"}`, 403)
}

// TestEventStream follows the SSE stream and sees an event committed after it
// started, then resumes from Last-Event-ID.
func TestEventStream(t *testing.T) {
	n := startNode(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", n.url+"/v1/scopes/default/events", nil)
	req.Header.Set("Authorization", "Bearer "+n.admin)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", "2") // skip scope.created, ca.created
	resp, err := n.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	n.must(n.admin, "POST", "/v1/scopes/default/devices", `{"id":"sse-1"}`, 201)
	sc := bufio.NewScanner(resp.Body)
	var id, typ string
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "id: "); ok {
			id = v
		}
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			typ = v
		}
		if line == "" && typ != "" {
			break
		}
	}
	if id != "3" || typ != "device.created" {
		t.Errorf("first streamed event: id %q type %q, want 3 device.created", id, typ)
	}
}
