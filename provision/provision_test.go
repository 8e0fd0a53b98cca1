package provision_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/provision"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/secret"
	"github.com/gatehouse-iot/gatehouse/store/sqlite"
)

type fixture struct {
	ctx   context.Context
	st    *sqlite.Store
	reg   *registry.Service
	prov  *provision.Service
	admin *gatehouse.Principal
	// newRegistry makes another registry on the same database: another
	// node's.
	newRegistry func() *registry.Service
}

func newFixture(t testing.TB, opts ...provision.Option) *fixture {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	kr, _ := secret.NewKeyring(key)
	ctx := context.Background()
	root, err := ca.LoadOrCreateInstallationCA(ctx, st, kr, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(st, registry.WithCA(root, kr))
	if err := reg.EnsureScope(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	g, _ := reg.CreateGlobalAdminToken(ctx, "admin")
	admin, _ := reg.Authenticate(ctx, g.Secret)
	return &fixture{ctx: ctx, st: st, reg: reg, admin: admin, prov: provision.New(st, reg, opts...),
		newRegistry: func() *registry.Service { return registry.New(st, registry.WithCA(root, kr)) }}
}

func (f *fixture) enroll(t testing.TB, body string) *gatehouse.Enrollment {
	t.Helper()
	var req registry.EnrollmentCreate
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	e, err := f.reg.CreateEnrollment(f.ctx, f.admin, "default", req)
	if err != nil {
		t.Fatalf("create enrollment: %v", err)
	}
	return e
}

func sasFor(t testing.TB, keyB64, regID string, derive bool) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		t.Fatal(err)
	}
	if derive {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(regID))
		key = m.Sum(nil)
	}
	return attest.NewSAS(key, "default/registrations/"+regID, time.Now().Add(time.Hour))
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := gatehouse.ErrorCode(err); got != code {
		t.Fatalf("got %v (code %q), want %q", err, got, code)
	}
}

func (f *fixture) deviceCount(t *testing.T) int {
	t.Helper()
	ds, err := f.st.ListDevices(f.ctx, gatehouse.DeviceFilter{Scope: "default", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(ds)
}

func TestSymmetricGroupAndIndividual(t *testing.T) {
	f := newFixture(t)
	g := f.enroll(t, `{"id":"line-1","type":"group","attestation":{"type":"symmetric_key"},"initialTags":{"line":"1"},"initialConfig":{"rate":5}}`)
	res, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "dev-1", SAS: sasFor(t, g.Attestation.PrimaryKey, "dev-1", true)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Device.ID != "dev-1" || res.Device.Tags["line"] != "1" || string(res.Device.Config) != `{"rate":5}` || res.Device.Enrollment != "line-1" {
		t.Errorf("device = %+v", res.Device)
	}
	if res.Registration.Status != gatehouse.RegAssigned || res.Registration.Substatus != gatehouse.SubInitialAssignment {
		t.Errorf("registration = %+v", res.Registration)
	}
	// The secondary key works too; a key of another device does not.
	if _, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "dev-2", SAS: sasFor(t, g.Attestation.SecondaryKey, "dev-2", true)}); err != nil {
		t.Errorf("secondary key: %v", err)
	}
	forged := strings.Replace(sasFor(t, g.Attestation.PrimaryKey, "dev-1", true), "dev-1", "dev-3", 1)
	_, err = f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "dev-3", SAS: forged})
	wantCode(t, err, gatehouse.EAttestationFailed)
	if strings.Contains(gatehouse.ErrorMessage(err), "signature") {
		t.Errorf("device-facing message %q says which part failed", gatehouse.ErrorMessage(err))
	}
	ind := f.enroll(t, `{"id":"solo-1","type":"individual","attestation":{"type":"symmetric_key"}}`)
	if _, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "solo-1", SAS: sasFor(t, ind.Attestation.PrimaryKey, "solo-1", false)}); err != nil {
		t.Errorf("individual: %v", err)
	}
	if n := f.deviceCount(t); n != 3 {
		t.Errorf("%d devices, want 3", n)
	}
}

// TestSameIDConcurrently: 50 simultaneous registrations of one ID end with
// one device, and every one of them succeeds or is cleanly rate limited.
func TestSameIDConcurrently(t *testing.T) {
	f := newFixture(t, provision.WithRateLimits(1000, 1000, 1000, 1000))
	g := f.enroll(t, `{"id":"line-1","type":"group","attestation":{"type":"symmetric_key"}}`)
	sas := sasFor(t, g.Attestation.PrimaryKey, "dup-1", true)
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "dup-1", SAS: sas})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("registration %d: %v", i, err)
		}
	}
	if n := f.deviceCount(t); n != 1 {
		t.Errorf("%d devices after 50 concurrent registrations of one ID, want 1", n)
	}
	e, _ := f.st.GetEnrollment(f.ctx, "default", "line-1")
	if e.Registrations != 1 {
		t.Errorf("enrollment counts %d registrations, want 1", e.Registrations)
	}
}

func TestBootstrapTokenUses(t *testing.T) {
	f := newFixture(t)
	e := f.enroll(t, `{"id":"tok","type":"group","attestation":{"type":"token","maxUses":2}}`)
	for i, want := range []string{"", "", gatehouse.EAttestationFailed} {
		_, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: fmt.Sprintf("t-%d", i), Token: e.Attestation.Token})
		wantCode(t, err, want)
	}
	if n := f.deviceCount(t); n != 2 {
		t.Errorf("%d devices, want 2", n)
	}
	_, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "t-9", Token: "wrong-token-wrong-token"})
	wantCode(t, err, gatehouse.EAttestationFailed)
}

// pki builds root -> intermediate -> leaf.
type pki struct {
	root, inter     *x509.Certificate
	rootKey, intKey *ecdsa.PrivateKey
}

func newCert(t *testing.T, tmpl, parent *x509.Certificate, pub any, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber, _ = rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func newPKI(t *testing.T) *pki {
	p := &pki{}
	p.rootKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.intKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := func(cn string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	p.root = newCert(t, ca("factory root"), nil, &p.rootKey.PublicKey, p.rootKey)
	p.inter = newCert(t, ca("factory line 7"), p.root, &p.intKey.PublicKey, p.rootKey)
	return p
}

func (p *pki) leaf(t *testing.T, cn string) *x509.Certificate {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, p.inter, &k.PublicKey, p.intKey)
}

func pemBytes(c *x509.Certificate) []byte {
	return []byte("-----BEGIN CERTIFICATE-----\n" + base64.StdEncoding.EncodeToString(c.Raw) + "\n-----END CERTIFICATE-----\n")
}

func TestX509MostSpecificWins(t *testing.T) {
	f := newFixture(t)
	p := newPKI(t)
	mk := func(id string, c *x509.Certificate, enabled bool) {
		b, _ := json.Marshal(map[string]any{"id": id, "type": "group", "enabled": enabled,
			"attestation": map[string]any{"type": "x509", "certificate": string(pemBytes(c)), "verified": true},
			"initialTags": map[string]string{"via": id}})
		f.enroll(t, string(b))
	}
	mk("by-root", p.root, true)
	leaf := p.leaf(t, "x-1")
	res, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "x-1", Chain: []*x509.Certificate{leaf, p.inter}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Device.Tags["via"] != "by-root" {
		t.Errorf("matched %v", res.Device.Tags)
	}
	// Without the intermediate the chain does not reach the root.
	_, err = f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "x-2", Chain: []*x509.Certificate{p.leaf(t, "x-2")}})
	wantCode(t, err, gatehouse.EAttestationFailed)
	// The intermediate's enrollment is more specific; disabled, it blocks.
	mk("by-line", p.inter, false)
	time.Sleep(1100 * time.Millisecond) // group cache TTL
	_, err = f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "x-3", Chain: []*x509.Certificate{p.leaf(t, "x-3"), p.inter}})
	wantCode(t, err, gatehouse.EEnrollmentDisabled)
	// The CN must be the registration ID.
	_, err = f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "x-4", Chain: []*x509.Certificate{p.leaf(t, "someone-else"), p.inter}})
	wantCode(t, err, gatehouse.EAttestationFailed)
}

func TestReprovisionPolicies(t *testing.T) {
	for _, tt := range []struct {
		policy, wantSub, wantTag string
		code                     string
	}{
		{"migrate", gatehouse.SubDeviceDataMigrated, "changed", ""},
		{"reset", gatehouse.SubDeviceDataReset, "initial", ""},
		{"never", "", "", gatehouse.EReprovisionRefused},
	} {
		t.Run(tt.policy, func(t *testing.T) {
			f := newFixture(t)
			g := f.enroll(t, `{"id":"g","type":"group","attestation":{"type":"symmetric_key"},"initialTags":{"k":"initial"},"reprovision":"`+tt.policy+`"}`)
			req := provision.Request{Scope: "default", RegistrationID: "r-1", SAS: sasFor(t, g.Attestation.PrimaryKey, "r-1", true)}
			if _, err := f.prov.Register(f.ctx, req); err != nil {
				t.Fatal(err)
			}
			patch, _ := gatehouse.ParseDevicePatch([]byte(`{"tags":{"k":"changed"}}`))
			if _, err := f.reg.PatchDevice(f.ctx, f.admin, "default", "r-1", patch, ""); err != nil {
				t.Fatal(err)
			}
			// A second registration of an assigned device under "never" is
			// idempotent: it answers the assignment again.
			res, err := f.prov.Register(f.ctx, req)
			if tt.policy == "never" {
				if err != nil {
					t.Fatalf("repeat under never: %v", err)
				}
				// A forced one is re-provisioned.
				req.Force = true
				if _, err := f.prov.Register(f.ctx, req); err != nil {
					t.Fatalf("forced: %v", err)
				}
				return
			}
			wantCode(t, err, tt.code)
			if res.Registration.Substatus != tt.wantSub || res.Device.Tags["k"] != tt.wantTag {
				t.Errorf("substatus %q tags %v", res.Registration.Substatus, res.Device.Tags)
			}
		})
	}
}

func TestLifecycleRefusals(t *testing.T) {
	f := newFixture(t)
	g := f.enroll(t, `{"id":"g","type":"group","attestation":{"type":"symmetric_key"}}`)
	req := func(id string) provision.Request {
		return provision.Request{Scope: "default", RegistrationID: id, SAS: sasFor(t, g.Attestation.PrimaryKey, id, true)}
	}
	for _, id := range []string{"q", "d"} {
		if _, err := f.prov.Register(f.ctx, req(id)); err != nil {
			t.Fatal(err)
		}
	}
	f.reg.SetState(f.ctx, f.admin, "default", "q", gatehouse.StateQuarantined, "", "")
	f.reg.SetState(f.ctx, f.admin, "default", "d", gatehouse.StateDecommissioned, "", "")
	_, err := f.prov.Register(f.ctx, req("q"))
	wantCode(t, err, gatehouse.EDeviceQuarantined)
	_, err = f.prov.Register(f.ctx, req("d"))
	wantCode(t, err, gatehouse.EReprovisionRefused)
	reg, _ := f.reg.Registration(f.ctx, "default", "q")
	if reg.Status != gatehouse.RegFailed || reg.ErrorCode != gatehouse.EDeviceQuarantined {
		t.Errorf("failure record = %+v", reg)
	}
	// The operator deletes the decommissioned record: the device may enrol again.
	if err := f.reg.DeleteDevice(f.ctx, f.admin, "default", "d", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.prov.Register(f.ctx, req("d")); err != nil {
		t.Errorf("re-enrol after delete: %v", err)
	}
	// A disabled enrollment refuses, and nothing is created.
	off := false
	if _, err := f.reg.PatchEnrollment(f.ctx, f.admin, "default", "g", registry.EnrollmentPatch{Enabled: &off}, ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	before := f.deviceCount(t)
	_, err = f.prov.Register(f.ctx, req("new-1"))
	if code := gatehouse.ErrorCode(err); code != gatehouse.EEnrollmentDisabled && code != gatehouse.EEnrollmentNotFound {
		t.Errorf("disabled enrollment: %v", err)
	}
	if after := f.deviceCount(t); after != before {
		t.Errorf("a refused registration created a device (%d -> %d)", before, after)
	}
}

func TestLockoutAndAuthFailedEvent(t *testing.T) {
	f := newFixture(t, provision.WithRateLimits(1000, 1000, 1000, 1000))
	g := f.enroll(t, `{"id":"g","type":"group","attestation":{"type":"symmetric_key"}}`)
	bad := sasFor(t, base64.StdEncoding.EncodeToString([]byte("wrongwrongwrongwrong")), "v-1", true)
	var last error
	for range 6 {
		_, last = f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "v-1", SAS: bad})
	}
	wantCode(t, last, gatehouse.ERateLimited)
	if provision.RetryAfter(last) <= 0 {
		t.Error("no Retry-After on a lockout")
	}
	// Even the right key waits out the lockout.
	_, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "v-1", SAS: sasFor(t, g.Attestation.PrimaryKey, "v-1", true)})
	wantCode(t, err, gatehouse.ERateLimited)
	evs, _ := f.reg.Events(f.ctx, f.admin, "default", 0, 1000)
	n := 0
	for _, e := range evs {
		if e.Type == gatehouse.EventDeviceAuthFailed {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d device.auth_failed events, want 1", n)
	}
}

// TestLockoutPerSource: failed proofs from one address lock that address
// out of the ID, not the device registering from elsewhere; failures from
// many addresses lock the ID itself after ten times as many. Device SAS
// logins are guarded the same way.
func TestLockoutPerSource(t *testing.T) {
	f := newFixture(t, provision.WithRateLimits(1000, 1000, 1000, 1000))
	g := f.enroll(t, `{"id":"g","type":"group","attestation":{"type":"symmetric_key"}}`)
	bad := sasFor(t, base64.StdEncoding.EncodeToString([]byte("wrongwrongwrongwrong")), "p-1", true)
	req := func(source, sas string) provision.Request {
		return provision.Request{Scope: "default", RegistrationID: "p-1", SAS: sas, Source: source}
	}
	for range 6 {
		f.prov.Register(f.ctx, req("203.0.113.66", bad))
	}
	good := sasFor(t, g.Attestation.PrimaryKey, "p-1", true)
	_, err := f.prov.Register(f.ctx, req("203.0.113.66", good))
	wantCode(t, err, gatehouse.ERateLimited)
	if _, err := f.prov.Register(f.ctx, req("198.51.100.7", good)); err != nil {
		t.Fatalf("the device, from its own address, after an attacker's failures: %v", err)
	}

	// Spread over many addresses, failures lock the ID everywhere.
	for i := range 60 {
		f.prov.Register(f.ctx, req(fmt.Sprintf("192.0.2.%d", i), bad))
	}
	_, err = f.prov.Register(f.ctx, req("198.51.100.7", good))
	wantCode(t, err, gatehouse.ERateLimited)

	// Device SAS logins.
	group, _ := base64.StdEncoding.DecodeString(g.Attestation.PrimaryKey)
	if _, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "p-2", SAS: sasFor(t, g.Attestation.PrimaryKey, "p-2", true)}); err != nil {
		t.Fatal(err)
	}
	goodDev := attest.NewSAS(attest.DeriveDeviceKey(group, "p-2"), "default/devices/p-2", time.Now().Add(time.Hour))
	badDev := attest.NewSAS([]byte("wrongwrongwrongwrongwrongwrong12"), "default/devices/p-2", time.Now().Add(time.Hour))
	for range 6 {
		f.prov.AuthenticateDeviceSAS(f.ctx, "default", "p-2", badDev, "203.0.113.66")
	}
	_, err = f.prov.AuthenticateDeviceSAS(f.ctx, "default", "p-2", goodDev, "203.0.113.66")
	wantCode(t, err, gatehouse.ERateLimited)
	if _, err := f.prov.AuthenticateDeviceSAS(f.ctx, "default", "p-2", goodDev, "198.51.100.7"); err != nil {
		t.Errorf("device SAS from the device's own address: %v", err)
	}
}

func TestWebhooksAndAllocation(t *testing.T) {
	secretKey := "hook-secret-0123456789"
	var mu sync.Mutex
	var seen []provision.HookRequest
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sig := r.Header.Get(provision.SignatureHeader)
		ts := strings.TrimPrefix(strings.Split(sig, ",")[0], "t=")
		m := hmac.New(sha256.New, []byte(secretKey))
		m.Write([]byte(ts + "."))
		m.Write(body)
		if !strings.HasSuffix(sig, "v1="+hex.EncodeToString(m.Sum(nil))) {
			http.Error(w, "bad signature", 401)
			return
		}
		var hr provision.HookRequest
		json.Unmarshal(body, &hr)
		mu.Lock()
		seen = append(seen, hr)
		mu.Unlock()
		switch {
		case hr.Kind == "preProvision" && hr.RegistrationID == "deny-me":
			json.NewEncoder(w).Encode(map[string]any{"allow": false, "reason": "not in inventory"})
		case hr.Kind == "preProvision":
			json.NewEncoder(w).Encode(map[string]any{"allow": true, "tags": map[string]string{"batch": "b7"}, "config": map[string]any{"mode": "eco"}})
		default:
			json.NewEncoder(w).Encode(map[string]any{"assignedHub": "hub-" + hr.DeviceID + ".example.com", "payload": map[string]any{"x": 1}})
		}
	}))
	defer hook.Close()
	f := newFixture(t)
	b, _ := json.Marshal(map[string]any{"id": "g", "type": "group", "attestation": map[string]any{"type": "symmetric_key"},
		"preProvisionWebhook": map[string]any{"url": hook.URL, "secret": secretKey},
		"allocation":          map[string]any{"policy": "custom", "webhook": map[string]any{"url": hook.URL, "secret": secretKey}}})
	g := f.enroll(t, string(b))
	res, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "w-1", SAS: sasFor(t, g.Attestation.PrimaryKey, "w-1", true)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Device.Tags["batch"] != "b7" || string(res.Device.Config) != `{"mode":"eco"}` || res.AssignedHub != "hub-w-1.example.com" || string(res.Payload) != `{"x":1}` {
		t.Errorf("device %+v hub %q payload %s", res.Device, res.AssignedHub, res.Payload)
	}
	_, err = f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "deny-me", SAS: sasFor(t, g.Attestation.PrimaryKey, "deny-me", true)})
	wantCode(t, err, gatehouse.EWebhookDenied)
	if len(seen) < 3 {
		t.Errorf("webhook saw %d requests", len(seen))
	}
}

func TestHashedAllocationIsStableAndWeighted(t *testing.T) {
	eps := []gatehouse.Endpoint{{Host: "a", Weight: 1}, {Host: "b", Weight: 3}}
	count := map[string]int{}
	for i := range 4000 {
		id := fmt.Sprintf("d-%d", i)
		h := provision.Rendezvous(eps, id)
		if provision.Rendezvous(eps, id) != h {
			t.Fatal("not stable")
		}
		count[h]++
	}
	if r := float64(count["b"]) / float64(count["a"]); r < 2.5 || r > 3.5 {
		t.Errorf("b/a = %.2f, want about 3 (%v)", r, count)
	}
	// Adding an endpoint moves only devices to it.
	more := append(eps, gatehouse.Endpoint{Host: "c", Weight: 1})
	for i := range 1000 {
		id := fmt.Sprintf("d-%d", i)
		if before, after := provision.Rendezvous(eps, id), provision.Rendezvous(more, id); before != after && after != "c" {
			t.Fatalf("%s moved from %s to %s", id, before, after)
		}
	}
}

// TestDefaultHub: an enrollment without endpoints assigns the node's
// default hub; one with endpoints assigns its own; without a default the
// hub stays empty.
func TestDefaultHub(t *testing.T) {
	f := newFixture(t, provision.WithDefaultHub("mqtt.example.com"))
	plain := f.enroll(t, `{"id":"plain","type":"group","attestation":{"type":"symmetric_key"}}`)
	own := f.enroll(t, `{"id":"own","type":"group","attestation":{"type":"symmetric_key"},"allocation":{"endpoints":[{"host":"hub-a.example.com:8884"}]}}`)
	hashed := f.enroll(t, `{"id":"hashed","type":"group","attestation":{"type":"symmetric_key"},"allocation":{"policy":"hashed"}}`)
	for _, tt := range []struct {
		e    *gatehouse.Enrollment
		id   string
		want string
	}{{plain, "h-1", "mqtt.example.com"}, {own, "h-2", "hub-a.example.com:8884"}, {hashed, "h-3", "mqtt.example.com"}} {
		res, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: tt.id, SAS: sasFor(t, tt.e.Attestation.PrimaryKey, tt.id, true)})
		if err != nil {
			t.Fatal(err)
		}
		if res.AssignedHub != tt.want || res.Registration.AssignedHub != tt.want {
			t.Errorf("%s: assigned %q (registration %q), want %q", tt.e.ID, res.AssignedHub, res.Registration.AssignedHub, tt.want)
		}
	}
	g := newFixture(t)
	e := g.enroll(t, `{"id":"plain","type":"group","attestation":{"type":"symmetric_key"}}`)
	res, err := g.prov.Register(g.ctx, provision.Request{Scope: "default", RegistrationID: "h-4", SAS: sasFor(t, e.Attestation.PrimaryKey, "h-4", true)})
	if err != nil {
		t.Fatal(err)
	}
	if res.AssignedHub != "" {
		t.Errorf("without a default hub: hub %q, want none", res.AssignedHub)
	}
}

func TestCertificateIssuedAtProvisioning(t *testing.T) {
	f := newFixture(t)
	g := f.enroll(t, `{"id":"g","type":"group","attestation":{"type":"symmetric_key"},"credentials":{"certificate":"required"}}`)
	req := provision.Request{Scope: "default", RegistrationID: "c-1", SAS: sasFor(t, g.Attestation.PrimaryKey, "c-1", true)}
	_, err := f.prov.Register(f.ctx, req)
	wantCode(t, err, gatehouse.ECSRInvalid)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	req.CSR, _ = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	res, err := f.prov.Register(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(res.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(res.Chain[len(res.Chain)-1])
	inter := x509.NewCertPool()
	for _, c := range res.Chain[:len(res.Chain)-1] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued chain: %v", err)
	}
	if _, _, err := f.reg.AuthenticateCertificate(f.ctx, "default", leaf, nil); err != nil {
		t.Errorf("issued certificate does not authenticate: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	f := newFixture(t, provision.WithRateLimits(1000, 1000, 1000, 1000))
	e := f.enroll(t, `{"id":"solo","type":"individual","attestation":{"type":"symmetric_key"}}`)
	register := func(key string) error {
		_, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "solo", SAS: sasFor(t, key, "solo", false)})
		return err
	}
	newSecondary, err := f.reg.RotateEnrollmentKey(f.ctx, f.admin, "default", "solo", "secondary")
	if err != nil {
		t.Fatal(err)
	}
	// During rotation both slots work: the untouched primary and the new secondary.
	for _, k := range []string{e.Attestation.PrimaryKey, newSecondary} {
		if err := register(k); err != nil {
			t.Errorf("key in a live slot refused: %v", err)
		}
	}
	wantCode(t, register(e.Attestation.SecondaryKey), gatehouse.EAttestationFailed)
	if _, err := f.reg.RotateEnrollmentKey(f.ctx, f.admin, "default", "solo", "primary"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, register(e.Attestation.PrimaryKey), gatehouse.EAttestationFailed)
	if err := register(newSecondary); err != nil {
		t.Errorf("secondary refused after the primary rotated: %v", err)
	}
	_, err = f.reg.RotateEnrollmentKey(f.ctx, f.admin, "default", "solo", "tertiary")
	wantCode(t, err, gatehouse.EInvalid)
}

func TestSecretCredentialRecords(t *testing.T) {
	f := newFixture(t)
	g := f.enroll(t, `{"id":"g","type":"group","attestation":{"type":"symmetric_key"}}`)
	tok := f.enroll(t, `{"id":"t","type":"group","attestation":{"type":"token","maxUses":3}}`)
	if _, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "k-1", SAS: sasFor(t, g.Attestation.SecondaryKey, "k-1", true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "t-1", Token: tok.Attestation.Token}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   string
		kind gatehouse.CredentialKind
		slot string
	}{{"k-1", gatehouse.CredentialSymmetricKey, "secondary"}, {"t-1", gatehouse.CredentialToken, ""}} {
		creds, err := f.reg.DeviceCredentials(f.ctx, f.admin, "default", c.id)
		if err != nil || len(creds) != 1 {
			t.Fatalf("%s credentials: %v %v", c.id, creds, err)
		}
		if creds[0].Kind != c.kind || creds[0].Slot != c.slot || creds[0].Status != gatehouse.CredentialActive {
			t.Errorf("%s credential = %+v", c.id, creds[0])
		}
	}
	d, _ := f.reg.DeviceByID(f.ctx, "default", "k-1")
	if err := f.reg.SymmetricKeyUsable(f.ctx, d); err != nil {
		t.Errorf("active key reported unusable: %v", err)
	}
	// Decommissioning revokes the key record too.
	if _, err := f.reg.SetState(f.ctx, f.admin, "default", "k-1", gatehouse.StateDecommissioned, "", ""); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.reg.SymmetricKeyUsable(f.ctx, d), gatehouse.EUnauthenticated)
}

// TestRevokeKeyCredential: an operator revokes one device's symmetric key
// without touching the device: its SAS tokens stop authenticating and it
// cannot register again with the key, while a sibling from the same group
// keeps working.
func TestRevokeKeyCredential(t *testing.T) {
	f := newFixture(t)
	g := f.enroll(t, `{"id":"g","type":"group","attestation":{"type":"symmetric_key"}}`)
	for _, id := range []string{"k-1", "k-2"} {
		if _, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: id, SAS: sasFor(t, g.Attestation.PrimaryKey, id, true)}); err != nil {
			t.Fatal(err)
		}
	}
	group, err := base64.StdEncoding.DecodeString(g.Attestation.PrimaryKey)
	if err != nil {
		t.Fatal(err)
	}
	deviceSAS := func(id string) string {
		return attest.NewSAS(attest.DeriveDeviceKey(group, id), "default/devices/"+id, time.Now().Add(time.Hour))
	}
	if _, err := f.prov.AuthenticateDeviceSAS(f.ctx, "default", "k-1", deviceSAS("k-1"), ""); err != nil {
		t.Fatalf("device SAS before revocation: %v", err)
	}
	creds, err := f.reg.DeviceCredentials(f.ctx, f.admin, "default", "k-1")
	if err != nil || len(creds) != 1 || creds[0].Kind != gatehouse.CredentialSymmetricKey {
		t.Fatalf("credentials: %v %v", creds, err)
	}
	// Scoped and authorised like every admin call.
	viewer := &gatehouse.Principal{TokenID: "v", Scope: "default", Role: gatehouse.RoleViewer}
	_, err = f.reg.RevokeCredential(f.ctx, viewer, "default", "k-1", creds[0].ID, "")
	wantCode(t, err, gatehouse.EForbidden)
	_, err = f.reg.RevokeCredential(f.ctx, f.admin, "default", "k-2", creds[0].ID, "")
	wantCode(t, err, gatehouse.ENotFound) // another device's credential
	_, err = f.reg.RevokeCredential(f.ctx, f.admin, "default", "k-1", creds[0].ID, "becauseIsaidso")
	wantCode(t, err, gatehouse.EInvalid)

	c, err := f.reg.RevokeCredential(f.ctx, f.admin, "default", "k-1", creds[0].ID, "keyCompromise")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != gatehouse.CredentialRevoked || c.RevocationReason != "keyCompromise" || c.Kind != gatehouse.CredentialSymmetricKey {
		t.Errorf("revoked credential = %+v", c)
	}
	_, err = f.reg.RevokeCredential(f.ctx, f.admin, "default", "k-1", creds[0].ID, "")
	wantCode(t, err, gatehouse.EAlreadyRevoked)

	_, err = f.prov.AuthenticateDeviceSAS(f.ctx, "default", "k-1", deviceSAS("k-1"), "")
	wantCode(t, err, gatehouse.EUnauthenticated)
	_, err = f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "k-1", SAS: sasFor(t, g.Attestation.PrimaryKey, "k-1", true)})
	wantCode(t, err, gatehouse.EAttestationFailed)
	if d, err := f.reg.DeviceByID(f.ctx, "default", "k-1"); err != nil || d.State == gatehouse.StateDecommissioned {
		t.Errorf("the device itself changed: %+v %v", d, err)
	}
	if _, err := f.prov.AuthenticateDeviceSAS(f.ctx, "default", "k-2", deviceSAS("k-2"), ""); err != nil {
		t.Errorf("sibling device refused: %v", err)
	}
}

// TestDeviceSASRefusedWithIDTemplate: in a group whose device IDs are not
// the registration IDs, the key derived from a device ID is another
// member's registration key, so no device of the group logs in by SAS: a
// member registered as "d-x" cannot pass for device "d-x" (registration x).
func TestDeviceSASRefusedWithIDTemplate(t *testing.T) {
	f := newFixture(t)
	g := f.enroll(t, `{"id":"g","type":"group","attestation":{"type":"symmetric_key"},"deviceIdTemplate":"d-{registrationId}"}`)
	for _, id := range []string{"x", "d-x"} {
		if _, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: id, SAS: sasFor(t, g.Attestation.PrimaryKey, id, true)}); err != nil {
			t.Fatal(err)
		}
	}
	group, _ := base64.StdEncoding.DecodeString(g.Attestation.PrimaryKey)
	// The member registered as "d-x" holds HMAC(group, "d-x"): the key a
	// device SAS for device "d-x" (registration "x") would be checked with.
	sas := attest.NewSAS(attest.DeriveDeviceKey(group, "d-x"), "default/devices/d-x", time.Now().Add(time.Hour))
	_, err := f.prov.AuthenticateDeviceSAS(f.ctx, "default", "d-x", sas, "")
	wantCode(t, err, gatehouse.EUnauthenticated)

	// With the identity template, SAS login works.
	h := f.enroll(t, `{"id":"h","type":"group","attestation":{"type":"symmetric_key"},"deviceIdTemplate":"{registrationId}"}`)
	if _, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "y", SAS: sasFor(t, h.Attestation.PrimaryKey, "y", true)}); err != nil {
		t.Fatal(err)
	}
	hk, _ := base64.StdEncoding.DecodeString(h.Attestation.PrimaryKey)
	if _, err := f.prov.AuthenticateDeviceSAS(f.ctx, "default", "y", attest.NewSAS(attest.DeriveDeviceKey(hk, "y"), "default/devices/y", time.Now().Add(time.Hour)), ""); err != nil {
		t.Errorf("identity template: %v", err)
	}
}

// TestNewGroupSeenAtOnce: the attestation's cache of groups never hides a
// group created on this node, and a group created on another node (here a
// second registry on the same database) is found by the first registration
// that misses once the cached list is groupRefreshAfter (100 ms) old.
func TestNewGroupSeenAtOnce(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	step := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	f := newFixture(t, provision.WithClock(clock))
	register := func(g *gatehouse.Enrollment, regID string) error {
		_, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: regID, SAS: sasFor(t, g.Attestation.PrimaryKey, regID, true)})
		return err
	}
	a := f.enroll(t, `{"id":"line-a","type":"group","attestation":{"type":"symmetric_key"}}`)
	if err := register(a, "a-1"); err != nil {
		t.Fatal(err) // the groups are cached from here
	}
	b := f.enroll(t, `{"id":"line-b","type":"group","attestation":{"type":"symmetric_key"}}`)
	if err := register(b, "b-1"); err != nil {
		t.Errorf("a group created on this node, at once: %v", err)
	}

	other := f.newRegistry()
	e, err := other.CreateEnrollment(f.ctx, f.admin, "default", registry.EnrollmentCreate{ID: "line-c", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}})
	if err != nil {
		t.Fatal(err)
	}
	step(50 * time.Millisecond)
	wantCode(t, register(e, "c-1"), gatehouse.EAttestationFailed) // the list read 50 ms ago is kept
	step(60 * time.Millisecond)
	if err := register(e, "c-1"); err != nil {
		t.Errorf("a group created on another node, 110 ms after the list was read: %v", err)
	}
}

// listCountingStore counts the reads of group lists, each made to take
// 50 ms (a big scope on a busy database), so that misses overlap.
type listCountingStore struct {
	gatehouse.Store
	lists atomic.Int32
}

func (s *listCountingStore) ListEnrollments(ctx context.Context, f gatehouse.EnrollmentFilter) ([]*gatehouse.Enrollment, error) {
	if f.Type == gatehouse.EnrollmentGroup {
		s.lists.Add(1)
		time.Sleep(50 * time.Millisecond)
	}
	return s.Store.ListEnrollments(ctx, f)
}

// TestBadCredentialsReadGroupsOnce: many failed attestations at once, with
// the cached groups old enough to re-read, read them once, not once each.
func TestBadCredentialsReadGroupsOnce(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFixture(t)
	counting := &listCountingStore{Store: f.st}
	prov := provision.New(counting, f.reg, provision.WithClock(clock), provision.WithRateLimits(1e6, 1e6, 1e6, 1e6))
	g := f.enroll(t, `{"id":"line-a","type":"group","attestation":{"type":"symmetric_key"}}`)
	if _, err := prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "a-1", SAS: sasFor(t, g.Attestation.PrimaryKey, "a-1", true)}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(500 * time.Millisecond) // cached, but old enough for a miss to re-read
	mu.Unlock()
	before := counting.lists.Load()
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			regID := fmt.Sprintf("bad-%d", i)
			forged := strings.Replace(sasFor(t, g.Attestation.PrimaryKey, "x-"+regID, true), "x-"+regID, regID, 1)
			_, err := prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: regID, SAS: forged})
			if gatehouse.ErrorCode(err) != gatehouse.EAttestationFailed {
				t.Errorf("a forged SAS: %v, want %s", err, gatehouse.EAttestationFailed)
			}
		})
	}
	wg.Wait()
	if n := counting.lists.Load() - before; n != 1 {
		t.Errorf("32 failed attestations read the groups %d times, want once", n)
	}
}

// blockingListStore holds every read of group lists until release is
// closed, and says when one has begun.
type blockingListStore struct {
	gatehouse.Store
	begun   chan struct{}
	release chan struct{}
}

func (s *blockingListStore) ListEnrollments(ctx context.Context, f gatehouse.EnrollmentFilter) ([]*gatehouse.Enrollment, error) {
	if f.Type == gatehouse.EnrollmentGroup {
		select {
		case s.begun <- struct{}{}:
		default:
		}
		<-s.release
	}
	return s.Store.ListEnrollments(ctx, f)
}

// TestGroupReadHonoursContext: a registration waiting for a read of the
// groups that another started (and that hangs) gives up when its own
// context ends.
func TestGroupReadHonoursContext(t *testing.T) {
	f := newFixture(t)
	g := f.enroll(t, `{"id":"line-a","type":"group","attestation":{"type":"symmetric_key"}}`)
	blocking := &blockingListStore{Store: f.st, begun: make(chan struct{}, 1), release: make(chan struct{})}
	prov := provision.New(blocking, f.reg, provision.WithRateLimits(1e6, 1e6, 1e6, 1e6))
	register := func(ctx context.Context, regID string) error {
		_, err := prov.Register(ctx, provision.Request{Scope: "default", RegistrationID: regID, SAS: sasFor(t, g.Attestation.PrimaryKey, regID, true)})
		return err
	}
	first := make(chan error, 1)
	go func() { first <- register(f.ctx, "a-1") }()
	<-blocking.begun
	// Ended once the second registration is (almost surely) waiting for
	// the read: its earlier steps take microseconds.
	ctx, cancel := context.WithCancel(f.ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	second := make(chan error, 1)
	go func() { second <- register(ctx, "a-2") }()
	select {
	case err := <-second:
		if err == nil {
			t.Error("a registration whose context ended succeeded")
		}
	case <-time.After(10 * time.Second): // a hang guard, not a timing
		t.Fatal("a registration waited for the shared read after its context ended")
	}
	close(blocking.release)
	if err := <-first; err != nil {
		t.Errorf("the registration that started the read: %v", err)
	}
}
