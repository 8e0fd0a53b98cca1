package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func TestHealth(t *testing.T) {
	e := newEnv(t, nil)
	var st map[string]string
	e.do("GET", "/healthz", "", nil).want(t, 200).decode(t, &st)
	if st["status"] != "ok" {
		t.Errorf("healthz status %q, want ok", st["status"])
	}
	e.do("GET", "/readyz", "", nil).want(t, 200)
	r := e.do("GET", "/v1/openapi.json", "", nil).want(t, 200)
	var doc map[string]any
	r.decode(t, &doc)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3") {
		t.Errorf("openapi %q, want 3.x", v)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/healthz", "/v1/scopes", "/v1/nope"} {
		r := e.do("GET", path, e.admin, nil)
		for k, want := range map[string]string{
			"X-Content-Type-Options":    "nosniff",
			"Cache-Control":             "no-store",
			"X-Frame-Options":           "DENY",
			"Strict-Transport-Security": "max-age=63072000",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("GET %s: %s %q, want %q", path, k, got, want)
			}
		}
	}
	if ct := e.do("GET", "/v1/scopes", e.admin, nil).header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
}

func TestScopes(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("POST", "/v1/scopes", e.admin, map[string]string{"id": "acme"}).want(t, http.StatusCreated)
	var sc gatehouse.Scope
	r.decode(t, &sc)
	if sc.ID != "acme" || sc.CreatedAt.IsZero() {
		t.Errorf("created scope %+v", sc)
	}
	if loc := r.header.Get("Location"); loc != "/v1/scopes/acme" {
		t.Errorf("Location %q, want /v1/scopes/acme", loc)
	}
	var l struct{ Items []gatehouse.Scope }
	e.do("GET", "/v1/scopes", e.admin, nil).want(t, 200).decode(t, &l)
	var ids []string
	for _, s := range l.Items {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"acme", "default"}) {
		t.Errorf("scopes %q, want acme, default", ids)
	}
	e.do("GET", "/v1/scopes/acme", e.admin, nil).want(t, 200).decode(t, &sc)
	if sc.ID != "acme" {
		t.Errorf("got scope %q, want acme", sc.ID)
	}

	e.do("POST", "/v1/scopes", e.admin, map[string]string{"id": "acme"}).problem(t, 409, gatehouse.EConflict)
	e.do("GET", "/v1/scopes/nope", e.admin, nil).problem(t, 404, gatehouse.ENotFound)

	// A scope's own admin sees only its scope and may not create scopes.
	acmeAdmin, _ := e.mustToken("acme", gatehouse.RoleAdmin)
	e.do("GET", "/v1/scopes", acmeAdmin, nil).want(t, 200).decode(t, &l)
	if len(l.Items) != 1 || l.Items[0].ID != "acme" {
		t.Errorf("scoped admin lists %+v, want only acme", l.Items)
	}
	e.do("POST", "/v1/scopes", acmeAdmin, map[string]string{"id": "mine"}).problem(t, 403, gatehouse.EForbidden)
	e.do("GET", "/v1/scopes/default", acmeAdmin, nil).problem(t, 404, gatehouse.ENotFound)
}

func TestTokens(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("POST", "/v1/scopes/default/tokens", e.admin, map[string]string{"name": "ci", "role": "operator"}).want(t, http.StatusCreated)
	var g map[string]any
	r.decode(t, &g)
	for _, k := range []string{"token", "id", "scope", "name", "role", "createdAt", "createdBy"} {
		if _, ok := g[k]; !ok {
			t.Errorf("token grant lacks %q: %s", k, r.body)
		}
	}
	if g["scope"] != "default" || g["name"] != "ci" || g["role"] != "operator" {
		t.Errorf("token grant %s", r.body)
	}
	secret, _ := g["token"].(string)
	id, _ := g["id"].(string)

	// The new token works, with its role.
	e.do("GET", "/v1/scopes/default/devices", secret, nil).want(t, 200)
	e.do("GET", "/v1/scopes/default/tokens", secret, nil).problem(t, 403, gatehouse.EForbidden)

	l := e.do("GET", "/v1/scopes/default/tokens", e.admin, nil).want(t, 200)
	if strings.Contains(string(l.body), secret) || strings.Contains(string(l.body), `"token"`) {
		t.Errorf("token list reveals a secret: %s", l.body)
	}
	var tl struct{ Items []gatehouse.Token }
	l.decode(t, &tl)
	if len(tl.Items) != 1 || tl.Items[0].ID != id {
		t.Errorf("token list %s, want the one token %s", l.body, id)
	}

	e.do("DELETE", "/v1/scopes/default/tokens/"+id, e.admin, nil).want(t, http.StatusNoContent)
	e.do("GET", "/v1/scopes/default/devices", secret, nil).problem(t, 401, gatehouse.EUnauthenticated)
	e.do("DELETE", "/v1/scopes/default/tokens/nosuchtoken", e.admin, nil).problem(t, 404, gatehouse.ENotFound)

	if strings.Contains(e.logs.String(), secret) || strings.Contains(e.logs.String(), e.admin) {
		t.Errorf("a token secret reached the log:\n%s", e.logs.String())
	}
}

func TestDeviceLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("POST", "/v1/scopes/default/devices", e.admin,
		map[string]any{"id": "dev-1", "tags": map[string]string{"site": "north"}, "config": map[string]any{"rate": 5}}).want(t, http.StatusCreated)
	var d gatehouse.Device
	r.decode(t, &d)
	if d.ID != "dev-1" || d.Scope != "default" || d.State != gatehouse.StateProvisioned || d.Tags["site"] != "north" || string(d.Config) != `{"rate":5}` {
		t.Errorf("created device %s", r.body)
	}
	if got, want := r.header.Get("ETag"), `"`+d.ETag+`"`; got != want {
		t.Errorf("ETag %q, want %q", got, want)
	}
	if loc := r.header.Get("Location"); loc != "/v1/scopes/default/devices/dev-1" {
		t.Errorf("Location %q", loc)
	}
	g := e.do("GET", "/v1/scopes/default/devices/dev-1", e.admin, nil).want(t, 200)
	if got, want := g.header.Get("ETag"), `"`+d.ETag+`"`; got != want {
		t.Errorf("GET ETag %q, want %q", got, want)
	}
	e.do("POST", "/v1/scopes/default/devices", e.admin, map[string]any{"id": "dev-1"}).problem(t, 409, gatehouse.EConflict)
	e.do("GET", "/v1/scopes/default/devices/nope", e.admin, nil).problem(t, 404, gatehouse.ENotFound)

	r = e.setState("dev-1", gatehouse.StateActive).want(t, 200)
	r.decode(t, &d)
	if d.State != gatehouse.StateActive {
		t.Errorf("state %q, want active", d.State)
	}
	e.setState("dev-1", gatehouse.StateProvisioned).problem(t, 409, gatehouse.EInvalidTransition)
	e.setState("dev-1", "sleeping").problem(t, 400, gatehouse.EInvalid)
	e.setState("dev-1", gatehouse.StateInactive, "If-Match", `"stale"`).problem(t, 412, gatehouse.EPreconditionFailed)
	e.setState("dev-1", gatehouse.StateInactive, "If-Match", `"`+d.ETag+`"`).want(t, 200)

	var h struct{ Items []gatehouse.StateChange }
	e.do("GET", "/v1/scopes/default/devices/dev-1/history", e.admin, nil).want(t, 200).decode(t, &h)
	var path []gatehouse.State
	for _, c := range h.Items {
		path = append(path, c.To)
	}
	if want := []gatehouse.State{"provisioned", "active", "inactive"}; !slices.Equal(path, want) {
		t.Errorf("history %q, want %q", path, want)
	}
	if h.Items[2].Reason != "test" || !strings.HasPrefix(h.Items[2].Actor, "token:") {
		t.Errorf("history entry %+v lacks reason or actor", h.Items[2])
	}
}

func TestPatchDevice(t *testing.T) {
	e := newEnv(t, nil)
	d := e.mustDevice("dev-1", map[string]string{"site": "north", "rack": "7"})
	path := "/v1/scopes/default/devices/dev-1"

	e.do("PATCH", path, e.admin, `{"tags":{"site":"south"}}`, "If-Match", `"0000"`).problem(t, 412, gatehouse.EPreconditionFailed)

	r := e.do("PATCH", path, e.admin, `{"tags":{"site":"south","rack":null},"config":{"mode":"eco"}}`,
		"If-Match", `"`+d.ETag+`"`, "Content-Type", "application/merge-patch+json").want(t, 200)
	var got gatehouse.Device
	r.decode(t, &got)
	if len(got.Tags) != 1 || got.Tags["site"] != "south" {
		t.Errorf("tags after patch %q, want only site=south", got.Tags)
	}
	if string(got.Config) != `{"mode":"eco"}` {
		t.Errorf("config after patch %s", got.Config)
	}
	if et := r.header.Get("ETag"); et == `"`+d.ETag+`"` || et != `"`+got.ETag+`"` {
		t.Errorf("ETag after patch %q; old %q, body %q", et, d.ETag, got.ETag)
	}
	// The old etag is stale now.
	e.do("PATCH", path, e.admin, `{"tags":{"x":"y"}}`, "If-Match", `"`+d.ETag+`"`).problem(t, 412, gatehouse.EPreconditionFailed)
	// application/json with a charset is accepted; no If-Match means unconditional.
	e.do("PATCH", path, e.admin, `{"config":{"mode":null,"level":2}}`, "Content-Type", "application/json; charset=utf-8").want(t, 200).decode(t, &got)
	if string(got.Config) != `{"level":2}` {
		t.Errorf("config after second patch %s", got.Config)
	}
	e.do("PATCH", path, e.admin, `{"state":"active"}`).problem(t, 400, gatehouse.EUnknownField)
	e.do("PATCH", path, e.admin, `{"tags":{"k":5}}`).problem(t, 400, gatehouse.EInvalid)
	e.do("PATCH", "/v1/scopes/default/devices/nope", e.admin, `{"tags":{}}`).problem(t, 404, gatehouse.ENotFound)
}

func TestListDevices(t *testing.T) {
	e := newEnv(t, nil)
	for i, id := range []string{"a1", "a2", "a3", "a4", "a5"} {
		site := "north"
		if i%2 == 1 {
			site = "south"
		}
		e.mustDevice(id, map[string]string{"site": site})
	}
	e.setState("a2", gatehouse.StateActive).want(t, 200)
	e.setState("a3", gatehouse.StateQuarantined).want(t, 200)

	ids := func(q string) []string {
		t.Helper()
		var page struct {
			Items      []gatehouse.Device
			NextCursor string
		}
		e.do("GET", "/v1/scopes/default/devices"+q, e.admin, nil).want(t, 200).decode(t, &page)
		var out []string
		for _, d := range page.Items {
			out = append(out, d.ID)
		}
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"a1", "a2", "a3", "a4", "a5"}},
		{"?tag=site=north", []string{"a1", "a3", "a5"}},
		{"?tag=site%3Dsouth", []string{"a2", "a4"}},
		{"?tag=site!=north&tag=site", []string{"a2", "a4"}},
		{"?tag=site+in+(north)", []string{"a1", "a3", "a5"}},
		{"?tag=!site", nil},
		{"?state=active", []string{"a2"}},
		{"?state=active,quarantined", []string{"a2", "a3"}},
		{"?state=active&state=quarantined", []string{"a2", "a3"}},
		{"?state=provisioned&tag=site=north", []string{"a1", "a5"}},
		{"?connection=offline&limit=2", []string{"a1", "a2"}},
		{"?connection=online", nil},
		// None of these devices has been seen: no last-seen bound matches.
		{"?lastSeenBefore=2100-01-01T00:00:00Z", nil},
		{"?lastSeenAfter=2000-01-01T00:00:00%2B02:00", nil},
		{"?enrollment=enr-nope", nil},
	} {
		if got := ids(tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("devices%s = %q, want %q", tc.query, got, tc.want)
		}
	}

	// Pages of two: three pages, each continuing where the last ended.
	var all []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		q := "?limit=2"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		var page struct {
			Items      []gatehouse.Device
			NextCursor string
		}
		e.do("GET", "/v1/scopes/default/devices"+q, e.admin, nil).want(t, 200).decode(t, &page)
		for _, d := range page.Items {
			all = append(all, d.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if want := []string{"a1", "a2", "a3", "a4", "a5"}; !slices.Equal(all, want) {
		t.Errorf("paged devices %q, want %q", all, want)
	}
}

func TestDeleteDevice(t *testing.T) {
	e := newEnv(t, nil)
	path := func(id string) string { return "/v1/scopes/default/devices/" + id }

	e.mustDevice("fresh", nil)
	e.do("DELETE", path("fresh"), e.admin, nil).want(t, http.StatusNoContent)
	e.do("GET", path("fresh"), e.admin, nil).problem(t, 404, gatehouse.ENotFound)
	e.do("DELETE", path("fresh"), e.admin, nil).problem(t, 404, gatehouse.ENotFound)

	e.mustDevice("busy", nil)
	e.setState("busy", gatehouse.StateActive).want(t, 200)
	e.do("DELETE", path("busy"), e.admin, nil).problem(t, 409, gatehouse.EConflict)

	var d gatehouse.Device
	e.setState("busy", gatehouse.StateDecommissioned).want(t, 200).decode(t, &d)
	e.setState("busy", gatehouse.StateActive).problem(t, 409, gatehouse.EInvalidTransition)
	e.do("DELETE", path("busy"), e.admin, nil, "If-Match", `"old"`).problem(t, 412, gatehouse.EPreconditionFailed)
	e.do("DELETE", path("busy"), e.admin, nil, "If-Match", `"`+d.ETag+`"`).want(t, http.StatusNoContent)
}

func TestEventsList(t *testing.T) {
	e := newEnv(t, nil)
	e.mustDevice("dev-1", nil)
	e.setState("dev-1", gatehouse.StateActive).want(t, 200)

	var l struct{ Items []gatehouse.Event }
	e.do("GET", "/v1/scopes/default/events", e.admin, nil).want(t, 200).decode(t, &l)
	var types []string
	for i, ev := range l.Items {
		if ev.Seq != int64(i+1) {
			t.Errorf("event %d has seq %d, want %d", i, ev.Seq, i+1)
		}
		if ev.Scope != "default" || ev.Time.IsZero() || ev.Actor == "" || ev.Subject == "" {
			t.Errorf("event %+v lacks a field", ev)
		}
		types = append(types, ev.Type)
	}
	for _, want := range []string{gatehouse.EventDeviceCreated, gatehouse.EventDeviceStateChanged} {
		if !slices.Contains(types, want) {
			t.Errorf("events %q lack %s", types, want)
		}
	}
	if len(l.Items) == 0 || l.Items[len(l.Items)-1].Subject != "devices/dev-1" {
		t.Errorf("last event is not about dev-1: %+v", l.Items)
	}

	// after and limit page through the log.
	e.do("GET", "/v1/scopes/default/events?after=1&limit=1", e.admin, nil).want(t, 200).decode(t, &l)
	if len(l.Items) != 1 || l.Items[0].Seq != 2 {
		t.Errorf("after=1&limit=1 gave %+v, want event 2", l.Items)
	}
	e.do("GET", "/v1/scopes/default/events?after=-1", e.admin, nil).problem(t, 400, gatehouse.EInvalid)
	e.do("GET", "/v1/scopes/default/events?limit=0", e.admin, nil).problem(t, 400, gatehouse.EInvalid)
	e.do("GET", "/v1/scopes/default/events?limit=1001", e.admin, nil).problem(t, 400, gatehouse.EInvalid)
	e.do("GET", "/v1/scopes/nope/events", e.admin, nil).problem(t, 404, gatehouse.ENotFound)
}

func TestMissRoutes(t *testing.T) {
	e := newEnv(t, nil)
	e.do("GET", "/nope", "", nil).problem(t, 404, gatehouse.ENotFound)
	e.do("GET", "/v1/scopes/default/devices/a/b/c", e.admin, nil).problem(t, 404, gatehouse.ENotFound)
	for _, tc := range []struct{ method, path, allow string }{
		{"PUT", "/v1/scopes", "POST, GET, HEAD"},
		{"POST", "/healthz", "GET, HEAD"},
		{"PUT", "/v1/scopes/default/devices/x", "GET, HEAD, PATCH, DELETE"},
		{"GET", "/v1/scopes/default/tokens/x", "DELETE"},
	} {
		r := e.do(tc.method, tc.path, e.admin, nil)
		r.problem(t, 405, gatehouse.EMethodNotAllowed)
		if got := r.header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
}

func TestUnauthenticated(t *testing.T) {
	e := newEnv(t, nil)
	e.mustDevice("dev-1", nil)
	ic := e.issue("dev-1")
	ocspReq := mustOCSPRequest(t, ic)
	for _, rt := range routes {
		if !rt.auth {
			// Public: health, the API description, and revocation status
			// (CRL and OCSP), which brokers fetch without a token.
			path := fillPath(rt.path, "default", "dev-1", "{request}", url.PathEscape(base64.StdEncoding.EncodeToString(ocspReq)))
			var r *resp
			if rt.method == "POST" {
				r = e.do(rt.method, path, "", ocspReq, "Content-Type", mediaOCSPRequest)
			} else {
				r = e.do(rt.method, path, "", nil)
			}
			if r.status != 200 {
				t.Errorf("%s %s without a token: %d, want 200", rt.method, path, r.status)
			}
			continue
		}
		path := fillPath(rt.path, "default", "dev-1", "{serial}", ic.Serial, "{credentialId}", ic.Serial)
		for _, authz := range []string{"", "Bearer", "Bearer gh_nope", "Basic YWRtaW46YWRtaW4=", "Bearer " + e.admin + "x"} {
			r := e.do(rt.method, path, "", sampleBody(t, rt), "Authorization", authz)
			r.problem(t, 401, gatehouse.EUnauthenticated)
			if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("%s %s: WWW-Authenticate %q, want Bearer", rt.method, path, got)
			}
		}
	}
}

// fillPath puts values into a route's path template; more holds further
// placeholder, value pairs.
func fillPath(tmpl, scope, id string, more ...string) string {
	return strings.NewReplacer(append([]string{"{scope}", scope, "{id}", id, "{registrationId}", id}, more...)...).Replace(tmpl)
}

// mustOCSPRequest returns a DER OCSP request about an issued certificate.
func mustOCSPRequest(t *testing.T, ic *registry.IssuedCertificate) []byte {
	t.Helper()
	req, err := ocsp.CreateRequest(parseCerts(t, ic.Certificate)[0], parseCerts(t, ic.Chain)[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// sampleBody returns a valid request body for a route, or nil. A new route
// with a body needs an entry here, or the route tables below fail.
func sampleBody(t *testing.T, rt route) any {
	t.Helper()
	switch rt.method + " " + rt.path {
	case "POST /v1/scopes":
		return map[string]string{"id": "newscope"}
	case "POST /v1/scopes/{scope}/tokens":
		return map[string]string{"name": "n", "role": "viewer"}
	case "POST /v1/scopes/{scope}/devices":
		return map[string]string{"id": "new-dev"}
	case "POST /v1/scopes/{scope}/imports", "POST /v1/scopes/{scope}/import-jobs":
		return map[string]string{"id": "imported-dev"} // one NDJSON line
	case "PATCH /v1/scopes/{scope}/devices/{id}":
		return map[string]any{"tags": map[string]string{"k": "v"}}
	case "POST /v1/scopes/{scope}/devices/{id}/state":
		return map[string]string{"state": "active"}
	case "PUT /v1/scopes/{scope}/policy":
		return map[string]any{"certValidity": "30d", "mqtt": map[string]any{"topicTemplates": []string{"fleet/{scope}/{deviceId}/#"}}}
	case "POST /v1/scopes/{scope}/devices/{id}/certificates":
		return map[string]string{"csr": mustCSR(t, "sample")}
	case "PUT /v1/scopes/{scope}/ca":
		certPEM, keyPEM, rootPEM := mustOwnCA(t)
		return registry.CAImport{Certificate: certPEM, PrivateKey: keyPEM, Chain: rootPEM}
	case "POST /v1/scopes/{scope}/certificates/{serial}/revoke", "POST /v1/scopes/{scope}/devices/{id}/credentials/{credentialId}/revoke":
		return map[string]string{"reason": "keyCompromise"}
	case "POST /v1/scopes/{scope}/enrollments":
		return map[string]any{"id": "new-enrollment", "type": "group", "attestation": map[string]any{"type": "token", "maxUses": 2}}
	case "PATCH /v1/scopes/{scope}/enrollments/{id}":
		return map[string]any{"enabled": false}
	case "POST /v1/scopes/{scope}/enrollments/{id}/verification-code":
		return map[string]any{}
	case "POST /v1/scopes/{scope}/webhooks":
		return map[string]any{"url": "https://example.com/hook", "events": []string{"device.*"}}
	case "POST /v1/scopes/{scope}/webhooks/{id}/replay":
		return map[string]int64{"fromSeq": 1}
	case "POST /v1/scopes/{scope}/enrollments/{id}/verify":
		return map[string]string{"certificate": mustLeafPEM(t, mustTestCA(t, "sample CA"), "0123456789abcdef0123456789abcdef")}
	}
	if rt.method == "POST" || rt.method == "PATCH" || rt.method == "PUT" {
		t.Fatalf("no sample body for %s %s", rt.method, rt.path)
	}
	return nil
}

// mustPrincipal returns the global admin's principal, for calling the
// registry directly.
func mustPrincipal(t *testing.T, e *env) *gatehouse.Principal {
	t.Helper()
	p, err := e.reg.Authenticate(t.Context(), e.admin)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCrossScopeDenial runs every route of scope default with a token of
// scope other (it must learn nothing: 403 or 404), and every write with a
// viewer of default (403).
func TestCrossScopeDenial(t *testing.T) {
	e := newEnv(t, nil)
	e.do("POST", "/v1/scopes", e.admin, map[string]string{"id": "other"}).want(t, http.StatusCreated)
	otherAdmin, _ := e.mustToken("other", gatehouse.RoleAdmin)
	viewer, _ := e.mustToken("default", gatehouse.RoleViewer)
	_, victimTokenID := e.mustToken("default", gatehouse.RoleOperator)
	e.mustDevice("dev-1", nil)
	victimCert := e.issue("dev-1")
	// An enrollment and a registration record named like the device, so
	// that the enrollment routes find their target.
	e.mustEnrollment(map[string]any{"id": "dev-1", "type": "group", "attestation": map[string]string{"type": "x509", "certificate": mustTestCA(t, "victim CA").pem}})
	if _, err := e.reg.NewVerificationCode(t.Context(), mustPrincipal(t, e), "default", "dev-1"); err != nil {
		t.Fatal(err)
	}
	// A finished import job of scope default, for the import-jobs routes.
	var victimJob struct {
		ID string `json:"id"`
	}
	e.do("POST", "/v1/scopes/default/import-jobs", e.admin, "id\njob-dev\n", "Content-Type", mediaCSV).want(t, http.StatusAccepted).decode(t, &victimJob)
	e.waitJob("default", victimJob.ID, e.admin)
	state := func() string {
		// Events record every change; the CA, policy and credentials are
		// compared as well.
		return string(e.do("GET", "/v1/scopes/default/events?limit=1000", e.admin, nil).want(t, 200).body) +
			string(e.do("GET", "/v1/scopes/default/ca", e.admin, nil).want(t, 200).body) +
			string(e.do("GET", "/v1/scopes/default", e.admin, nil).want(t, 200).body) +
			string(e.do("GET", "/v1/scopes/default/credentials", e.admin, nil).want(t, 200).body) +
			string(e.do("GET", "/v1/scopes/default/enrollments", e.admin, nil).want(t, 200).body) +
			string(e.do("GET", "/v1/scopes/default/import-jobs", e.admin, nil).want(t, 200).body)
	}
	before := state()

	checked := 0
	for _, rt := range routes {
		if !rt.auth || !strings.Contains(rt.path, "{scope}") {
			continue
		}
		id := "dev-1"
		if strings.Contains(rt.path, "/tokens/") {
			id = victimTokenID
		}
		if strings.Contains(rt.path, "/import-jobs/") {
			id = victimJob.ID
		}
		path := fillPath(rt.path, "default", id, "{serial}", victimCert.Serial, "{credentialId}", victimCert.Serial)
		r := e.do(rt.method, path, otherAdmin, sampleBody(t, rt))
		if r.status != 403 && r.status != 404 {
			t.Errorf("other scope's admin: %s %s = %d, want 403 or 404; body %s", rt.method, path, r.status, r.body)
		}
		var p Problem
		r.decode(t, &p)
		if strings.Contains(p.Detail, "dev-1") || strings.Contains(p.Detail, victimJob.ID) || strings.Contains(p.Detail, victimTokenID) || strings.Contains(p.Detail, victimCert.Serial) {
			t.Errorf("other scope's admin: %s %s reveals data: %s", rt.method, path, r.body)
		}
		// The stream authorises before it starts.
		if rt.path == "/v1/scopes/{scope}/events" {
			e.do("GET", path, otherAdmin, nil, "Accept", "text/event-stream").problem(t, 404, gatehouse.ENotFound)
		}
		checked++

		if rt.method != "GET" {
			e.do(rt.method, path, viewer, sampleBody(t, rt)).problem(t, 403, gatehouse.EForbidden)
		}
	}
	if checked < 27 {
		t.Errorf("checked %d scoped routes; the table has more", checked)
	}
	e.do("POST", "/v1/scopes", viewer, map[string]string{"id": "x"}).problem(t, 403, gatehouse.EForbidden)
	e.do("GET", "/v1/scopes/default/tokens", viewer, nil).problem(t, 403, gatehouse.EForbidden)

	// Nothing changed in scope default.
	if after := state(); after != before {
		t.Errorf("denied requests changed scope default: %s, then %s", before, after)
	}
	e.do("GET", "/v1/scopes/default/devices/dev-1", e.admin, nil).want(t, 200)
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, nil)
	e.mustDevice("dev-1", nil)
	big := strings.Repeat("a", gatehouse.MaxConfigBytes)
	manyTags := map[string]string{}
	for i := range gatehouse.MaxTags + 1 {
		manyTags["k"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	devs := "/v1/scopes/default/devices"
	dev := devs + "/dev-1"
	for _, tc := range []struct {
		name, method, path string
		body               any
		hdr                []string
		status             int
		code               string
	}{
		{"malformed JSON", "POST", devs, `{"id":`, nil, 400, gatehouse.EInvalidJSON},
		{"not an object", "POST", devs, `[1,2]`, nil, 400, gatehouse.EInvalidJSON},
		{"wrong field type", "POST", devs, `{"id":5}`, nil, 400, gatehouse.EInvalidJSON},
		{"trailing data", "POST", devs, `{"id":"x"} {}`, nil, 400, gatehouse.EInvalidJSON},
		{"empty body", "POST", devs, ``, nil, 400, gatehouse.EInvalidJSON},
		{"unknown field", "POST", devs, `{"id":"x","state":"active"}`, nil, 400, gatehouse.EUnknownField},
		{"unknown field, scope", "POST", "/v1/scopes", `{"id":"x","name":"y"}`, nil, 400, gatehouse.EUnknownField},
		{"unknown field, token", "POST", "/v1/scopes/default/tokens", `{"name":"x","role":"admin","ttl":5}`, nil, 400, gatehouse.EUnknownField},
		{"unknown field, state", "POST", dev + "/state", `{"state":"active","why":"x"}`, nil, 400, gatehouse.EUnknownField},
		{"oversize body", "POST", devs, `{"id":"x","config":{"a":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}}`, nil, 413, gatehouse.EBodyTooLarge},
		{"oversize patch", "PATCH", dev, `{"config":{"a":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}}`, nil, 413, gatehouse.EBodyTooLarge},
		{"no content type", "POST", devs, `{"id":"x"}`, []string{"Content-Type", ""}, 415, gatehouse.EUnsupportedMedia},
		{"text/plain", "POST", devs, `{"id":"x"}`, []string{"Content-Type", "text/plain"}, 415, gatehouse.EUnsupportedMedia},
		{"merge patch on POST", "POST", devs, `{"id":"x"}`, []string{"Content-Type", "application/merge-patch+json"}, 415, gatehouse.EUnsupportedMedia},
		{"latin1 charset", "POST", devs, `{"id":"x"}`, []string{"Content-Type", "application/json; charset=latin1"}, 415, gatehouse.EUnsupportedMedia},
		{"malformed content type", "PATCH", dev, `{}`, []string{"Content-Type", "application/json; ="}, 415, gatehouse.EUnsupportedMedia},
		{"form on PATCH", "PATCH", dev, `{}`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, gatehouse.EUnsupportedMedia},
		{"invalid device id", "POST", devs, `{"id":"Bad ID!"}`, nil, 400, gatehouse.EInvalidID},
		{"empty device id", "POST", devs, `{}`, nil, 400, gatehouse.EInvalidID},
		{"long device id", "POST", devs, map[string]string{"id": strings.Repeat("a", 129)}, nil, 400, gatehouse.EInvalidID},
		{"invalid path id", "GET", devs + "/UPPER", nil, nil, 400, gatehouse.EInvalidID},
		{"escaped slash in path id", "GET", devs + "/a%2Fb", nil, nil, 400, gatehouse.EInvalidID},
		{"invalid path id, patch", "PATCH", devs + "/UPPER", `{}`, nil, 400, gatehouse.EInvalidID},
		{"invalid path id, history", "GET", devs + "/a%20b/history", nil, nil, 400, gatehouse.EInvalidID},
		{"invalid scope id", "POST", "/v1/scopes", `{"id":"-acme"}`, nil, 400, gatehouse.EInvalidID},
		{"bad cursor", "GET", devs + "?cursor=garbage", nil, nil, 400, gatehouse.EInvalidCursor},
		{"tampered cursor", "GET", devs + "?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("v1:UPPER")), nil, nil, 400, gatehouse.EInvalidCursor},
		{"bad selector", "GET", devs + "?tag=site%20in%20(a", nil, nil, 400, gatehouse.EInvalidSelector},
		{"empty selector", "GET", devs + "?tag=", nil, nil, 400, gatehouse.EInvalidSelector},
		{"bad selector key", "GET", devs + "?tag=s%20i%20t%20e", nil, nil, 400, gatehouse.EInvalidSelector},
		{"too many selectors", "GET", devs + "?" + strings.Repeat("tag=a&", 17), nil, nil, 400, gatehouse.EInvalidSelector},
		{"bad limit", "GET", devs + "?limit=abc", nil, nil, 400, gatehouse.EInvalid},
		{"zero limit", "GET", devs + "?limit=0", nil, nil, 400, gatehouse.EInvalid},
		{"huge limit", "GET", devs + "?limit=1000000000000000000000", nil, nil, 400, gatehouse.EInvalid},
		{"repeated limit", "GET", devs + "?limit=1&limit=2", nil, nil, 400, gatehouse.EInvalid},
		{"bad state", "GET", devs + "?state=sleeping", nil, nil, 400, gatehouse.EInvalid},
		{"bad connection", "GET", devs + "?connection=maybe", nil, nil, 400, gatehouse.EInvalid},
		{"bad lastSeenBefore", "GET", devs + "?lastSeenBefore=yesterday", nil, nil, 400, gatehouse.EInvalid},
		{"lastSeenAfter without zone", "GET", devs + "?lastSeenAfter=2026-01-02T15:04:05", nil, nil, 400, gatehouse.EInvalid},
		{"repeated lastSeenAfter", "GET", devs + "?lastSeenAfter=2026-01-02T15:04:05Z&lastSeenAfter=2026-01-03T15:04:05Z", nil, nil, 400, gatehouse.EInvalid},
		{"empty last-seen window", "GET", devs + "?lastSeenAfter=2026-01-02T00:00:00Z&lastSeenBefore=2026-01-01T00:00:00Z", nil, nil, 400, gatehouse.EInvalid},
		{"bad enrollment", "GET", devs + "?enrollment=Not%20An%20ID", nil, nil, 400, gatehouse.EInvalid},
		{"unknown parameter", "GET", devs + "?tags=a=b", nil, nil, 400, gatehouse.EInvalid},
		{"bad query escape", "GET", devs + "?tag=%zz", nil, nil, 400, gatehouse.EInvalid},
		{"bad after", "GET", "/v1/scopes/default/events?after=x", nil, nil, 400, gatehouse.EInvalid},
		{"bad Last-Event-ID", "GET", "/v1/scopes/default/events", nil, []string{"Accept", "text/event-stream", "Last-Event-ID", "x"}, 400, gatehouse.EInvalid},
		{"config over 32 KiB", "POST", devs, map[string]any{"id": "big", "config": map[string]string{"a": big}}, nil, 400, gatehouse.ETooLarge},
		{"config patch over 32 KiB", "PATCH", dev, map[string]any{"config": map[string]string{"a": big}}, nil, 400, gatehouse.ETooLarge},
		{"config not an object", "POST", devs, `{"id":"x","config":[1]}`, nil, 400, gatehouse.EInvalid},
		{"too many tags", "POST", devs, map[string]any{"id": "x", "tags": manyTags}, nil, 400, gatehouse.ETooLarge},
		{"tag key too long", "POST", devs, map[string]any{"id": "x", "tags": map[string]string{strings.Repeat("k", 129): "v"}}, nil, 400, gatehouse.ETooLarge},
		{"tag value too long", "POST", devs, map[string]any{"id": "x", "tags": map[string]string{"k": strings.Repeat("v", 257)}}, nil, 400, gatehouse.ETooLarge},
		{"tag key invalid", "POST", devs, map[string]any{"id": "x", "tags": map[string]string{"a=b": "v"}}, nil, 400, gatehouse.EInvalid},
		{"tag value control char", "POST", devs, map[string]any{"id": "x", "tags": map[string]string{"k": "a\nb"}}, nil, 400, gatehouse.EInvalid},
		{"too many tags by patch", "PATCH", dev, map[string]any{"tags": manyTags}, nil, 400, gatehouse.ETooLarge},
		{"reason too long", "POST", dev + "/state", map[string]string{"state": "active", "reason": strings.Repeat("r", 1025)}, nil, 400, gatehouse.ETooLarge},
		{"bad role", "POST", "/v1/scopes/default/tokens", `{"name":"x","role":"root"}`, nil, 400, gatehouse.EInvalid},
		{"empty token name", "POST", "/v1/scopes/default/tokens", `{"name":"","role":"admin"}`, nil, 400, gatehouse.EInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, e.admin, tc.body, tc.hdr...)
			r.problem(t, tc.status, tc.code)
		})
	}
	// None of it touched dev-1.
	var d gatehouse.Device
	e.do("GET", dev, e.admin, nil).want(t, 200).decode(t, &d)
	if len(d.Tags) != 0 || string(d.Config) != "{}" || d.State != gatehouse.StateProvisioned {
		t.Errorf("dev-1 changed: %+v", d)
	}
}

func TestSmallBodyCap(t *testing.T) {
	e := newEnv(t, nil, WithMaxBodyBytes(64))
	e.do("POST", "/v1/scopes/default/devices", e.admin, `{"id":"x","config":{"a":"`+strings.Repeat("a", 64)+`"}}`).
		problem(t, 413, gatehouse.EBodyTooLarge)
	e.do("POST", "/v1/scopes/default/devices", e.admin, `{"id":"x"}`).want(t, http.StatusCreated)
}

func TestAccessLog(t *testing.T) {
	e := newEnv(t, nil)
	e.do("GET", "/v1/scopes/default/devices", e.admin, nil).want(t, 200)
	var found bool
	for line := range strings.Lines(e.logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] != "http request" || rec["path"] != "/v1/scopes/default/devices" {
			continue
		}
		found = true
		for _, k := range []string{"method", "path", "status", "duration_ms", "scope", "token_id"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("access log lacks %q: %s", k, line)
			}
		}
		if rec["status"] != float64(200) || rec["scope"] != "default" || rec["method"] != "GET" {
			t.Errorf("access log %s", line)
		}
	}
	if !found {
		t.Errorf("no access log line for the request:\n%s", e.logs.String())
	}
	if strings.Contains(e.logs.String(), e.admin) || strings.Contains(e.logs.String(), "Bearer") {
		t.Errorf("the log holds credentials:\n%s", e.logs.String())
	}
}

// TestStatusTable holds the one code-to-status table to the codes the root
// package defines.
func TestStatusTable(t *testing.T) {
	want := map[string]int{
		gatehouse.EInvalid: 400, gatehouse.EInvalidID: 400, gatehouse.EInvalidJSON: 400, gatehouse.EUnknownField: 400,
		gatehouse.EInvalidCursor: 400, gatehouse.EInvalidSelector: 400, gatehouse.ETooLarge: 400,
		gatehouse.ECSRInvalid: 400, gatehouse.EUnsupportedKey: 400, gatehouse.EInvalidPEM: 400, gatehouse.EInvalidCA: 400,
		gatehouse.EAlreadyRevoked: 409, gatehouse.ECredentialDenied: 409,
		gatehouse.EUnauthenticated: 401, gatehouse.EForbidden: 403, gatehouse.ENotFound: 404,
		gatehouse.EMethodNotAllowed: 405, gatehouse.EConflict: 409, gatehouse.EInvalidTransition: 409,
		gatehouse.EPreconditionFailed: 412, gatehouse.EBodyTooLarge: 413, gatehouse.EUnsupportedMedia: 415,
		gatehouse.ERateLimited: 429, gatehouse.EInternal: 500, gatehouse.EUnavailable: 503,
		gatehouse.EEnrollmentNotFound: 404, gatehouse.EAttestationFailed: 400, gatehouse.EEnrollmentDisabled: 409,
		gatehouse.EEnrollmentExpired: 409, gatehouse.EQuotaExceeded: 409, gatehouse.EDeviceQuarantined: 409,
		gatehouse.EDeviceDisabled: 409, gatehouse.EReprovisionRefused: 409, gatehouse.EWebhookDenied: 403,
		gatehouse.EWebhookFailed: 503,
	}
	for code, status := range want {
		if got := statusOf[code]; got != status {
			t.Errorf("statusOf[%q] = %d, want %d", code, got, status)
		}
	}
	for code := range statusOf {
		if _, ok := want[code]; !ok {
			t.Errorf("statusOf maps %q, which this test does not know", code)
		}
	}
}
