package httpapi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

const enrollments = "/v1/scopes/default/enrollments"

// testCA is a CA an operator owns: its certificate and key.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  string
}

// mustTestCA makes a self-signed P-256 CA.
func mustTestCA(tb testing.TB, cn string) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// leaf issues a (non-CA) certificate with subject CN cn; a nil ca makes it
// self-signed.
func (ca *testCA) leaf(tb testing.TB, cn string) (string, *x509.Certificate) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	parent, signer := tmpl, crypto.Signer(key)
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), cert
}

// mustEnrollment creates an enrollment in scope default as the global admin.
func (e *env) mustEnrollment(body any) (*gatehouse.Enrollment, *resp) {
	e.t.Helper()
	r := e.do("POST", enrollments, e.admin, body).want(e.t, http.StatusCreated)
	var en gatehouse.Enrollment
	r.decode(e.t, &en)
	return &en, r
}

// noSecrets fails if any of secrets appears in s.
func noSecrets(t *testing.T, where, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			t.Errorf("%s reveals a secret %.8s...:\n%s", where, sec, s)
		}
	}
}

func TestEnrollmentSymmetricKeyGroup(t *testing.T) {
	e := newEnv(t, nil)
	en, r := e.mustEnrollment(map[string]any{"id": "line-1", "type": "group", "attestation": map[string]string{"type": "symmetric_key"},
		"initialTags": map[string]string{"line": "1"}, "initialConfig": map[string]int{"rate": 5}})
	if en.ID != "line-1" || en.Scope != "default" || en.Type != gatehouse.EnrollmentGroup || !en.Enabled || en.Attestation.Type != gatehouse.AttestSymmetricKey {
		t.Errorf("created %s", r.body)
	}
	if loc := r.header.Get("Location"); loc != enrollments+"/line-1" {
		t.Errorf("Location %q", loc)
	}
	if got, want := r.header.Get("ETag"), `"`+en.ETag+`"`; got != want || en.ETag == "" {
		t.Errorf("ETag %q, want %q", got, want)
	}
	// Generated keys: shown once, strong, and different.
	var secrets []string
	for _, k := range []string{en.Attestation.PrimaryKey, en.Attestation.SecondaryKey} {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(b) != 64 {
			t.Errorf("generated key %q: %d bytes, %v; want 64 bytes of base64", k, len(b), err)
		}
		secrets = append(secrets, k)
	}
	if secrets[0] == secrets[1] {
		t.Errorf("primary and secondary keys are equal")
	}
	if en.Credentials.Certificate != gatehouse.CertOptional || en.Allocation.Policy != gatehouse.AllocateStatic || en.Reprovision != gatehouse.ReprovisionMigrate {
		t.Errorf("defaults not applied: %s", r.body)
	}

	// Never again: not by GET, not in a listing, not in the event log.
	g := e.do("GET", enrollments+"/line-1", e.admin, nil).want(t, 200)
	var got gatehouse.Enrollment
	g.decode(t, &got)
	if got.Attestation.PrimaryKey != "" || got.Attestation.SecondaryKey != "" || strings.Contains(string(g.body), "Key\"") {
		t.Errorf("GET shows keys: %s", g.body)
	}
	if got.InitialTags["line"] != "1" || string(got.InitialConfig) != `{"rate":5}` || got.ETag != en.ETag {
		t.Errorf("GET %s", g.body)
	}
	noSecrets(t, "GET", string(g.body), secrets...)
	noSecrets(t, "list", string(e.do("GET", enrollments, e.admin, nil).want(t, 200).body), secrets...)
	noSecrets(t, "events", string(e.do("GET", "/v1/scopes/default/events", e.admin, nil).want(t, 200).body), secrets...)

	// Supplied keys are taken, and not echoed back.
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	en2, r2 := e.mustEnrollment(map[string]any{"id": "line-2", "type": "group",
		"attestation": map[string]string{"type": "symmetric_key", "primaryKey": key, "secondaryKey": key}})
	if en2.Attestation.PrimaryKey != "" || en2.Attestation.SecondaryKey != "" {
		t.Errorf("supplied keys echoed: %s", r2.body)
	}
	noSecrets(t, "the access log", e.logs.String(), append(secrets, key)...)
}

func TestEnrollmentX509Individual(t *testing.T) {
	e := newEnv(t, nil)
	certPEM, cert := (*testCA)(nil).leaf(t, "sensor-1")
	sum := sha256.Sum256(cert.Raw)
	en, r := e.mustEnrollment(map[string]any{"id": "sensor-1", "type": "individual",
		"attestation": map[string]string{"type": "x509", "certificate": certPEM}})
	if en.Attestation.Thumbprint != hex.EncodeToString(sum[:]) || !strings.Contains(en.Attestation.Certificate, "BEGIN CERTIFICATE") {
		t.Errorf("created %s", r.body)
	}
	// By thumbprint alone, as openssl prints it.
	other := strings.ToUpper(hex.EncodeToString(sum[:]))
	var colons []string
	for i := 0; i < len(other); i += 2 {
		colons = append(colons, other[i:i+2])
	}
	en, r = e.mustEnrollment(map[string]any{"id": "sensor-2", "type": "individual",
		"attestation": map[string]string{"type": "x509", "thumbprint": strings.Join(colons, ":")}})
	if en.Attestation.Thumbprint != hex.EncodeToString(sum[:]) || en.Attestation.Certificate != "" {
		t.Errorf("created by thumbprint %s", r.body)
	}
	// The certificate's CN must be the registration ID.
	e.do("POST", enrollments, e.admin, map[string]any{"id": "sensor-3", "type": "individual",
		"attestation": map[string]string{"type": "x509", "certificate": certPEM}}).problem(t, 400, gatehouse.EInvalid)
}

func TestEnrollmentX509GroupVerify(t *testing.T) {
	e := newEnv(t, nil)
	ca := mustTestCA(t, "Line CA")
	en, _ := e.mustEnrollment(map[string]any{"id": "line-ca", "type": "group", "attestation": map[string]string{"type": "x509", "certificate": ca.pem}})
	if en.Attestation.Verified {
		t.Fatalf("a new CA is verified without proof")
	}
	path := enrollments + "/line-ca"
	wrong, _ := ca.leaf(t, "0123456789abcdef0123456789abcdef")

	// Verify before asking for a code: a step is missing.
	e.do("POST", path+"/verify", e.admin, map[string]string{"certificate": wrong}).problem(t, 412, gatehouse.EPreconditionFailed)

	var vc struct{ VerificationCode string }
	e.do("POST", path+"/verification-code", e.admin, nil).want(t, 200).decode(t, &vc)
	if len(vc.VerificationCode) != 32 {
		t.Fatalf("verification code %q", vc.VerificationCode)
	}
	// An empty JSON object is a body too.
	var vc2 struct{ VerificationCode string }
	e.do("POST", path+"/verification-code", e.admin, `{}`).want(t, 200).decode(t, &vc2)
	if vc2.VerificationCode == vc.VerificationCode {
		t.Errorf("a second code repeats the first")
	}
	code := vc2.VerificationCode

	// Wrong proofs: another code, another CA's signature, garbage.
	otherCA := mustTestCA(t, "Someone else")
	forged, _ := otherCA.leaf(t, code)
	for name, proof := range map[string]string{"wrong code": wrong, "old code": mustLeafPEM(t, ca, vc.VerificationCode), "other CA": forged} {
		p := e.do("POST", path+"/verify", e.admin, map[string]string{"certificate": proof}).problem(t, 400, gatehouse.EAttestationFailed)
		if p.Detail == "attestation failed" {
			t.Errorf("%s: the operator is not told what is wrong: %q", name, p.Detail)
		}
	}
	e.do("POST", path+"/verify", e.admin, map[string]string{"certificate": "not pem"}).problem(t, 400, gatehouse.EInvalidPEM)
	e.do("POST", path+"/verify", e.admin, map[string]string{"certificate": ""}).problem(t, 400, gatehouse.EInvalidPEM)
	var cur gatehouse.Enrollment
	e.do("GET", path, e.admin, nil).want(t, 200).decode(t, &cur)
	if cur.Attestation.Verified {
		t.Fatalf("verified by a wrong proof")
	}

	operator, _ := e.mustToken("default", gatehouse.RoleOperator)
	r := e.do("POST", path+"/verify", operator, map[string]string{"certificate": mustLeafPEM(t, ca, strings.ToUpper(code))}).want(t, 200)
	var done gatehouse.Enrollment
	r.decode(t, &done)
	if !done.Attestation.Verified || done.Attestation.VerificationCode != "" || r.header.Get("ETag") != `"`+done.ETag+`"` {
		t.Errorf("after verify: %s", r.body)
	}
	// The code is spent.
	e.do("POST", path+"/verify", e.admin, map[string]string{"certificate": mustLeafPEM(t, ca, code)}).problem(t, 412, gatehouse.EPreconditionFailed)

	// Only an admin vouches for a CA without proof.
	e.do("POST", enrollments, operator, map[string]any{"id": "vouched", "type": "group",
		"attestation": map[string]any{"type": "x509", "certificate": ca.pem, "verified": true}}).problem(t, 403, gatehouse.EForbidden)
	v, _ := e.mustEnrollment(map[string]any{"id": "vouched", "type": "group", "attestation": map[string]any{"type": "x509", "certificate": ca.pem, "verified": true}})
	if !v.Attestation.Verified {
		t.Errorf("admin-vouched CA not verified")
	}

	// Proof of possession belongs to group CAs only.
	e.mustEnrollment(map[string]any{"id": "tok", "type": "individual", "attestation": map[string]string{"type": "token"}})
	e.do("POST", enrollments+"/tok/verification-code", e.admin, nil).problem(t, 400, gatehouse.EInvalid)
	e.do("POST", enrollments+"/nope/verification-code", e.admin, nil).problem(t, 404, gatehouse.ENotFound)
}

func mustLeafPEM(tb testing.TB, ca *testCA, cn string) string {
	tb.Helper()
	p, _ := ca.leaf(tb, cn)
	return p
}

func TestEnrollmentToken(t *testing.T) {
	e := newEnv(t, nil)
	exp := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	en, r := e.mustEnrollment(map[string]any{"id": "batch-7", "type": "group",
		"attestation": map[string]any{"type": "token", "maxUses": 5, "expiresAt": exp}})
	tok := en.Attestation.Token
	if len(tok) < 32 || en.Attestation.MaxUses != 5 || en.Attestation.Uses != 0 || en.Attestation.ExpiresAt == nil || !en.Attestation.ExpiresAt.Equal(exp) {
		t.Errorf("created %s", r.body)
	}
	g := e.do("GET", enrollments+"/batch-7", e.admin, nil).want(t, 200)
	noSecrets(t, "GET", string(g.body), tok)
	if strings.Contains(string(g.body), `"token":`) || strings.Contains(string(g.body), "okenHash") {
		t.Errorf("GET shows the token: %s", g.body)
	}
	// A token the operator chose.
	own := "a-chosen-bootstrap-token-0001"
	en, _ = e.mustEnrollment(map[string]any{"id": "dev-9", "type": "individual", "attestation": map[string]any{"type": "token", "token": own}})
	if en.Attestation.Token != own || en.Attestation.MaxUses != 1 || en.Attestation.ExpiresAt == nil {
		t.Errorf("chosen token: %+v", en.Attestation)
	}
	noSecrets(t, "list", string(e.do("GET", enrollments, e.admin, nil).want(t, 200).body), tok, own)
	noSecrets(t, "the access log", e.logs.String(), tok, own)
}

func TestEnrollmentPatch(t *testing.T) {
	e := newEnv(t, nil)
	en, _ := e.mustEnrollment(map[string]any{"id": "line-1", "type": "group", "attestation": map[string]string{"type": "symmetric_key"},
		"initialTags": map[string]string{"a": "1", "b": "2"}, "maxRegistrations": 10})
	path := enrollments + "/line-1"

	e.do("PATCH", path, e.admin, `{"enabled":false}`, "If-Match", `"stale"`).problem(t, 412, gatehouse.EPreconditionFailed)
	r := e.do("PATCH", path, e.admin, `{"enabled":false}`, "If-Match", `"`+en.ETag+`"`).want(t, 200)
	var got gatehouse.Enrollment
	r.decode(t, &got)
	if got.Enabled || got.ETag == en.ETag || r.header.Get("ETag") != `"`+got.ETag+`"` {
		t.Errorf("after disable: %s", r.body)
	}
	// The old etag is stale now; a list of etags and weak forms match.
	e.do("PATCH", path, e.admin, `{"enabled":true}`, "If-Match", `"`+en.ETag+`"`).problem(t, 412, gatehouse.EPreconditionFailed)
	e.do("PATCH", path, e.admin, `{"enabled":true}`, "If-Match", `"x", W/"`+got.ETag+`"`, "Content-Type", "application/merge-patch+json").
		want(t, 200).decode(t, &got)
	if !got.Enabled {
		t.Errorf("not enabled again")
	}

	// Merge semantics: objects merge, null resets, absent stays.
	e.do("PATCH", path, e.admin, `{"initialTags":{"a":null,"c":"3"},"maxRegistrations":null,"reprovision":"never","allocation":{"policy":"hashed","endpoints":[{"host":"hub-1.example.com:8883","weight":3},{"host":"hub-2.example.com"}]}}`,
		"Content-Type", "application/merge-patch+json").want(t, 200).decode(t, fresh(&got))
	if !maps(got.InitialTags, map[string]string{"b": "2", "c": "3"}) || got.MaxRegistrations != 0 || got.Reprovision != gatehouse.ReprovisionNever ||
		got.Allocation.Policy != gatehouse.AllocateHashed || len(got.Allocation.Endpoints) != 2 || got.Allocation.Endpoints[1].Weight != 1 || !got.Enabled {
		t.Errorf("after merge: %+v", got)
	}
	e.do("PATCH", path, e.admin, `{"reprovision":null,"allocation":{"endpoints":null}}`).want(t, 200).decode(t, fresh(&got))
	if got.Reprovision != gatehouse.ReprovisionMigrate || got.Allocation.Policy != gatehouse.AllocateHashed || len(got.Allocation.Endpoints) != 0 {
		t.Errorf("after resets: %+v", got)
	}
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	e.do("PATCH", path, e.admin, map[string]any{"expiresAt": exp, "initialConfig": map[string]int{"x": 1}}).want(t, 200).decode(t, fresh(&got))
	if got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || string(got.InitialConfig) != `{"x":1}` {
		t.Errorf("after expiry: %+v", got)
	}
	e.do("PATCH", path, e.admin, `{"expiresAt":null}`, "Content-Type", "application/merge-patch+json").want(t, 200).decode(t, fresh(&got))
	if got.ExpiresAt != nil {
		t.Errorf("expiresAt after null: %v, want no expiry", got.ExpiresAt)
	}
	e.do("PATCH", path, e.admin, `{"initialConfig":null}`).want(t, 200).decode(t, fresh(&got))
	if c := string(got.InitialConfig); c != "" && c != "{}" {
		t.Errorf("initialConfig after null: %s", got.InitialConfig)
	}

	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"attestation is not patchable", `{"attestation":{"type":"token"}}`, 400, gatehouse.EUnknownField},
		{"unknown member", `{"enabld":false}`, 400, gatehouse.EUnknownField},
		{"enabled null", `{"enabled":null}`, 400, gatehouse.EInvalid},
		{"not an object", `[1]`, 400, gatehouse.EInvalidJSON},
		{"null body", `null`, 400, gatehouse.EInvalidJSON},
		{"wrong type", `{"maxRegistrations":"5"}`, 400, gatehouse.EInvalidJSON},
		{"negative quota", `{"maxRegistrations":-1}`, 400, gatehouse.EInvalid},
		{"bad policy", `{"reprovision":"sometimes"}`, 400, gatehouse.EInvalid},
		{"plain http webhook", `{"preProvisionWebhook":{"url":"http://hooks.example.com/x","secret":"0123456789abcdef"}}`, 400, gatehouse.EInvalid},
		{"webhook without secret", `{"preProvisionWebhook":{"url":"https://hooks.example.com/x"}}`, 400, gatehouse.EInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.do("PATCH", path, e.admin, tc.body).problem(t, tc.status, tc.code)
		})
	}

	// A webhook: its secret is taken and never shown; null removes it.
	whSecret := "webhook-secret-0123456789"
	r = e.do("PATCH", path, e.admin, map[string]any{"preProvisionWebhook": map[string]string{"url": "https://hooks.example.com/pre", "secret": whSecret}}).want(t, 200)
	r.decode(t, fresh(&got))
	if got.PreProvision == nil || got.PreProvision.URL != "https://hooks.example.com/pre" {
		t.Errorf("webhook not set: %s", r.body)
	}
	// Changing its timeout keeps the secret (no new one needed).
	e.do("PATCH", path, e.admin, `{"preProvisionWebhook":{"timeout":"10s"}}`).want(t, 200).decode(t, fresh(&got))
	if got.PreProvision == nil || time.Duration(got.PreProvision.Timeout) != 10*time.Second {
		t.Errorf("webhook timeout not merged: %+v", got.PreProvision)
	}
	e.do("PATCH", path, e.admin, `{"preProvisionWebhook":null}`).want(t, 200).decode(t, fresh(&got))
	if got.PreProvision != nil {
		t.Errorf("webhook not removed: %+v", got.PreProvision)
	}
	noSecrets(t, "responses and log", string(r.body)+e.logs.String(), whSecret)

	// A viewer may read but not patch; a missing enrollment is 404.
	viewer, _ := e.mustToken("default", gatehouse.RoleViewer)
	e.do("GET", path, viewer, nil).want(t, 200)
	e.do("PATCH", path, viewer, `{"enabled":false}`).problem(t, 403, gatehouse.EForbidden)
	e.do("PATCH", enrollments+"/nope", e.admin, `{"enabled":false}`).problem(t, 404, gatehouse.ENotFound)
}

// fresh zeroes *v and returns v, for decoding a new answer into it.
func fresh[T any](v *T) *T {
	var zero T
	*v = zero
	return v
}

func maps(got, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func TestEnrollmentDelete(t *testing.T) {
	e := newEnv(t, nil)
	en, _ := e.mustEnrollment(map[string]any{"id": "gone", "type": "individual", "attestation": map[string]string{"type": "token"}})
	path := enrollments + "/gone"
	e.do("DELETE", path, e.admin, nil, "If-Match", `"stale"`).problem(t, 412, gatehouse.EPreconditionFailed)
	e.do("DELETE", path, e.admin, nil, "If-Match", `"`+en.ETag+`"`).want(t, http.StatusNoContent)
	e.do("GET", path, e.admin, nil).problem(t, 404, gatehouse.ENotFound)
	e.do("DELETE", path, e.admin, nil).problem(t, 404, gatehouse.ENotFound)
	e.mustEnrollment(map[string]any{"id": "gone", "type": "individual", "attestation": map[string]string{"type": "token"}})
	e.do("DELETE", path, e.admin, nil).want(t, http.StatusNoContent)
}

func TestListEnrollments(t *testing.T) {
	e := newEnv(t, nil)
	var groups, all []string
	for i, id := range []string{"e-5", "e-1", "e-4", "e-2", "e-3", "e-0"} {
		typ := "individual"
		if i%2 == 0 {
			typ = "group"
			groups = append(groups, id)
		}
		e.mustEnrollment(map[string]any{"id": id, "type": typ, "attestation": map[string]any{"type": "token", "maxUses": 2}})
		all = append(all, id)
	}
	slices.Sort(all)
	slices.Sort(groups)
	page := func(query string) ([]string, string) {
		var l struct {
			Items      []gatehouse.Enrollment
			NextCursor string
		}
		r := e.do("GET", enrollments+query, e.admin, nil).want(t, 200)
		r.decode(t, &l)
		var ids []string
		for _, en := range l.Items {
			ids = append(ids, en.ID)
			if en.Attestation.Token != "" {
				t.Errorf("listing shows a token: %s", r.body)
			}
		}
		return ids, l.NextCursor
	}
	if ids, next := page(""); !slices.Equal(ids, all) || next != "" {
		t.Errorf("list = %q next %q, want %q", ids, next, all)
	}
	if ids, _ := page("?type=group"); !slices.Equal(ids, groups) {
		t.Errorf("list type=group = %q, want %q", ids, groups)
	}
	// Plain paging over everything, two at a time.
	var paged []string
	cursor := ""
	for range 10 {
		q := "?limit=2"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		ids, next := page(q)
		paged = append(paged, ids...)
		if cursor = next; cursor == "" {
			break
		}
	}
	if !slices.Equal(paged, all) {
		t.Errorf("paged = %q, want %q", paged, all)
	}
	if ids, next := page("?type=individual&limit=1"); len(ids) != 1 || next == "" {
		t.Errorf("type=individual&limit=1 = %q, %q", ids, next)
	}

	for _, tc := range []struct{ query, code string }{
		{"?type=both", gatehouse.EInvalid},
		{"?type=group&type=individual", gatehouse.EInvalid},
		{"?limit=0", gatehouse.EInvalid},
		{"?limit=1001", gatehouse.EInvalid},
		{"?cursor=garbage", gatehouse.EInvalidCursor},
		{"?state=active", gatehouse.EInvalid},
	} {
		e.do("GET", enrollments+tc.query, e.admin, nil).problem(t, 400, tc.code)
	}
	e.do("GET", "/v1/scopes/nope/enrollments", e.admin, nil).problem(t, 404, gatehouse.ENotFound)
}

func TestEnrollmentBadInput(t *testing.T) {
	e := newEnv(t, nil)
	e.mustEnrollment(map[string]any{"id": "taken", "type": "individual", "attestation": map[string]string{"type": "token"}})
	deviceCert, _ := (*testCA)(nil).leaf(t, "sensor-1")
	ca := mustTestCA(t, "CA")
	past := time.Now().Add(-time.Hour).UTC()
	tok := func(extra map[string]any) map[string]any {
		m := map[string]any{"id": "x-1", "type": "individual", "attestation": map[string]any{"type": "token"}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	att := func(typ string, a map[string]any) map[string]any {
		a["type"] = typ
		return map[string]any{"id": "sensor-1", "type": "individual", "attestation": a}
	}
	grp := func(a map[string]any) map[string]any {
		return map[string]any{"id": "g-1", "type": "group", "attestation": a}
	}
	for _, tc := range []struct {
		name   string
		body   any
		hdr    []string
		status int
		code   string
	}{
		{"unknown attestation type", att("tpm", map[string]any{}), nil, 400, gatehouse.EInvalid},
		{"no attestation", map[string]any{"id": "x-1", "type": "group"}, nil, 400, gatehouse.EInvalid},
		{"bad enrollment type", map[string]any{"id": "x-1", "type": "herd", "attestation": map[string]any{"type": "token"}}, nil, 400, gatehouse.EInvalid},
		{"bad id", tok(map[string]any{"id": "Bad ID"}), nil, 400, gatehouse.EInvalidID},
		{"no id", map[string]any{"type": "group", "attestation": map[string]any{"type": "token", "maxUses": 2}}, nil, 400, gatehouse.EInvalidID},
		{"duplicate", tok(map[string]any{"id": "taken"}), nil, 409, gatehouse.EConflict},
		{"bad base64 key", grp(map[string]any{"type": "symmetric_key", "primaryKey": "not base64!!"}), nil, 400, gatehouse.EInvalid},
		{"short key", grp(map[string]any{"type": "symmetric_key", "primaryKey": base64.StdEncoding.EncodeToString([]byte("short"))}), nil, 400, gatehouse.EInvalid},
		{"bad thumbprint", att("x509", map[string]any{"thumbprint": "abc"}), nil, 400, gatehouse.EInvalid},
		{"thumbprint not hex", att("x509", map[string]any{"thumbprint": strings.Repeat("zz", 32)}), nil, 400, gatehouse.EInvalid},
		{"x509 without certificate", att("x509", map[string]any{}), nil, 400, gatehouse.EInvalid},
		{"certificate not PEM", att("x509", map[string]any{"certificate": "hello"}), nil, 400, gatehouse.EInvalidPEM},
		{"certificate PEM of a key", att("x509", map[string]any{"certificate": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}), nil, 400, gatehouse.EInvalidPEM},
		{"non-CA certificate for a group", grp(map[string]any{"type": "x509", "certificate": deviceCert}), nil, 400, gatehouse.EInvalid},
		{"thumbprint for a group", grp(map[string]any{"type": "x509", "thumbprint": strings.Repeat("ab", 32)}), nil, 400, gatehouse.EInvalid},
		{"CN is not the ID", att("x509", map[string]any{"certificate": ca.pem}), nil, 400, gatehouse.EInvalid},
		{"token expiresAt in the past", tok(map[string]any{"attestation": map[string]any{"type": "token", "expiresAt": past}}), nil, 400, gatehouse.EInvalid},
		{"token too short", tok(map[string]any{"attestation": map[string]any{"type": "token", "token": "short"}}), nil, 400, gatehouse.EInvalid},
		{"negative maxUses", tok(map[string]any{"attestation": map[string]any{"type": "token", "maxUses": -1}}), nil, 400, gatehouse.EInvalid},
		{"uses is read-only", tok(map[string]any{"attestation": map[string]any{"type": "token", "uses": 3}}), nil, 400, gatehouse.EInvalid},
		{"verificationCode is read-only", grp(map[string]any{"type": "x509", "certificate": ca.pem, "verificationCode": "abc"}), nil, 400, gatehouse.EInvalid},
		{"bad webhook URL (http to non-loopback)", tok(map[string]any{"preProvisionWebhook": map[string]string{"url": "http://hooks.example.com/", "secret": "0123456789abcdef"}}), nil, 400, gatehouse.EInvalid},
		{"webhook URL not absolute", tok(map[string]any{"preProvisionWebhook": map[string]string{"url": "/hook", "secret": "0123456789abcdef"}}), nil, 400, gatehouse.EInvalid},
		{"webhook secret too short", tok(map[string]any{"preProvisionWebhook": map[string]string{"url": "https://hooks.example.com/", "secret": "short"}}), nil, 400, gatehouse.EInvalid},
		{"webhook timeout too long", tok(map[string]any{"preProvisionWebhook": map[string]string{"url": "https://hooks.example.com/", "secret": "0123456789abcdef", "timeout": "5m"}}), nil, 400, gatehouse.EInvalid},
		{"custom allocation without webhook", tok(map[string]any{"allocation": map[string]any{"policy": "custom"}}), nil, 400, gatehouse.EInvalid},
		{"bad allocation policy", tok(map[string]any{"allocation": map[string]any{"policy": "random"}}), nil, 400, gatehouse.EInvalid},
		{"bad endpoint", tok(map[string]any{"allocation": map[string]any{"endpoints": []map[string]any{{"host": "a b"}}}}), nil, 400, gatehouse.EInvalid},
		{"bad certificate policy", tok(map[string]any{"credentials": map[string]any{"certificate": "always"}}), nil, 400, gatehouse.EInvalid},
		{"bad validity", tok(map[string]any{"credentials": map[string]any{"validity": "1m"}}), nil, 400, gatehouse.EInvalid},
		{"validity not a duration", tok(map[string]any{"credentials": map[string]any{"validity": "soon"}}), nil, 400, gatehouse.EInvalidJSON},
		{"bad reprovision", tok(map[string]any{"reprovision": "sometimes"}), nil, 400, gatehouse.EInvalid},
		{"bad template", tok(map[string]any{"deviceIdTemplate": "{serial}"}), nil, 400, gatehouse.EInvalid},
		{"initialConfig not an object", tok(map[string]any{"initialConfig": []int{1}}), nil, 400, gatehouse.EInvalid},
		{"bad initial tag", tok(map[string]any{"initialTags": map[string]string{"a=b": "c"}}), nil, 400, gatehouse.EInvalid},
		{"negative maxRegistrations", tok(map[string]any{"maxRegistrations": -1}), nil, 400, gatehouse.EInvalid},
		{"unknown field", tok(map[string]any{"owner": "me"}), nil, 400, gatehouse.EUnknownField},
		{"unknown attestation field", tok(map[string]any{"attestation": map[string]any{"type": "token", "pin": "1234"}}), nil, 400, gatehouse.EUnknownField},
		{"token hash is not a field", tok(map[string]any{"attestation": map[string]any{"type": "token", "TokenHash": "x"}}), nil, 400, gatehouse.EUnknownField},
		{"wrong type", `{"id":"x-1","type":"individual","attestation":"token"}`, nil, 400, gatehouse.EInvalidJSON},
		{"malformed", `{"id":`, nil, 400, gatehouse.EInvalidJSON},
		{"oversized body", `{"id":"x-1","type":"individual","attestation":{"type":"x509","certificate":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}}`, nil, 413, gatehouse.EBodyTooLarge},
		{"text/plain", tok(nil), []string{"Content-Type", "text/plain"}, 415, gatehouse.EUnsupportedMedia},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.do("POST", enrollments, e.admin, tc.body, tc.hdr...).problem(t, tc.status, tc.code)
		})
	}
	// Path IDs and the other routes.
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"GET", enrollments + "/UPPER", nil, 400, gatehouse.EInvalidID},
		{"GET", enrollments + "/nope", nil, 404, gatehouse.ENotFound},
		{"DELETE", enrollments + "/a%2Fb", nil, 400, gatehouse.EInvalidID},
		{"POST", enrollments + "/taken/verify", `{"certificate":"x","extra":1}`, 400, gatehouse.EUnknownField},
		{"POST", enrollments + "/taken/verify", `{}`, 400, gatehouse.EInvalidPEM},
		{"POST", enrollments + "/taken/verification-code", `{"x":1}`, 400, gatehouse.EUnknownField},
		{"GET", "/v1/scopes/default/registrations/nope", nil, 404, gatehouse.ENotFound},
		{"GET", "/v1/scopes/default/registrations/Bad%20ID", nil, 400, gatehouse.EInvalidID},
		{"POST", "/v1/scopes/nope/enrollments", tok(nil), 404, gatehouse.ENotFound},
	} {
		e.do(tc.method, tc.path, e.admin, tc.body).problem(t, tc.status, tc.code)
	}
	// Nothing was created.
	var l struct{ Items []gatehouse.Enrollment }
	e.do("GET", enrollments, e.admin, nil).want(t, 200).decode(t, &l)
	if len(l.Items) != 1 {
		t.Errorf("bad input created enrollments: %+v", l.Items)
	}
}

func TestEnrollmentSmallBodyCap(t *testing.T) {
	e := newEnv(t, nil, WithMaxBodyBytes(256))
	ca := mustTestCA(t, "CA")
	e.do("POST", enrollments, e.admin, map[string]any{"id": "g", "type": "group", "attestation": map[string]string{"type": "x509", "certificate": ca.pem}}).
		problem(t, 413, gatehouse.EBodyTooLarge)
	e.do("POST", enrollments+"/g/verify", e.admin, map[string]string{"certificate": ca.pem}).problem(t, 413, gatehouse.EBodyTooLarge)
}

func TestRegistrationRecord(t *testing.T) {
	e := newEnv(t, nil)
	en, _ := e.mustEnrollment(map[string]any{"id": "sensor-9", "type": "individual", "attestation": map[string]string{"type": "token"}})
	ctx := t.Context()
	// The provisioning service commits a registration; the device
	// front end is not part of this API.
	_, err := e.reg.CommitProvision(ctx, registry.ProvisionCommit{Scope: "default", RegistrationID: "sensor-9", EnrollmentID: "sensor-9",
		DeviceID: "sensor-9", OperationID: "op-1", ConsumeToken: true, AssignedHub: "hub-1.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	viewer, _ := e.mustToken("default", gatehouse.RoleViewer)
	r := e.do("GET", "/v1/scopes/default/registrations/sensor-9", viewer, nil).want(t, 200)
	var reg gatehouse.Registration
	r.decode(t, &reg)
	if reg.RegistrationID != "sensor-9" || reg.EnrollmentID != "sensor-9" || reg.DeviceID != "sensor-9" || reg.Status != gatehouse.RegAssigned ||
		reg.Substatus != gatehouse.SubInitialAssignment || reg.AssignedHub != "hub-1.example.com" || reg.Attempts != 1 || r.header.Get("ETag") != `"`+reg.ETag+`"` {
		t.Errorf("registration %s", r.body)
	}
	var after gatehouse.Enrollment
	e.do("GET", enrollments+"/sensor-9", e.admin, nil).want(t, 200).decode(t, &after)
	if after.Registrations != 1 || after.Attestation.Uses != 1 || after.ETag != en.ETag || !after.UpdatedAt.Equal(en.UpdatedAt) {
		t.Errorf("enrollment after a registration: %+v; want the counts moved, the etag and updatedAt not", after)
	}
	// An operator's If-Match read before the registration still holds, and
	// the settings change keeps the counts.
	e.do("PATCH", enrollments+"/sensor-9", e.admin, `{"initialTags":{"site":"b"}}`, "If-Match", `"`+en.ETag+`"`).want(t, 200).decode(t, &after)
	if after.Registrations != 1 || after.Attestation.Uses != 1 || after.ETag == en.ETag {
		t.Errorf("enrollment after a settings change: %+v; want the counts kept, a new etag", after)
	}
	e.do("GET", "/v1/scopes/default/devices/sensor-9", e.admin, nil).want(t, 200)

	// A failed one records its error code.
	if err := e.reg.RecordRegistrationFailure(ctx, "default", "sensor-10", "sensor-9", "op-2", gatehouse.Errorf(gatehouse.EEnrollmentDisabled, "the enrollment is disabled")); err != nil {
		t.Fatal(err)
	}
	r = e.do("GET", "/v1/scopes/default/registrations/sensor-10", e.admin, nil).want(t, 200)
	r.decode(t, &reg)
	if reg.Status != gatehouse.RegDisabled || reg.ErrorCode != gatehouse.EEnrollmentDisabled {
		t.Errorf("failed registration %s", r.body)
	}
}

// TestEnrollmentSecretsNeverLogged creates every kind of secret through
// the API with a debug logger attached, then reads everything back: no
// secret may appear in the log or in any later answer.
func TestEnrollmentSecretsNeverLogged(t *testing.T) {
	e := newEnv(t, nil)
	var secrets []string
	for _, body := range []map[string]any{
		{"id": "sym", "type": "group", "attestation": map[string]string{"type": "symmetric_key"}},
		{"id": "tok", "type": "group", "attestation": map[string]any{"type": "token", "maxUses": 3}},
		{"id": "ind", "type": "individual", "attestation": map[string]string{"type": "symmetric_key"},
			"preProvisionWebhook": map[string]string{"url": "https://hooks.example.com/", "secret": "the-webhook-secret-42"}},
	} {
		en, _ := e.mustEnrollment(body)
		secrets = append(secrets, en.Attestation.PrimaryKey, en.Attestation.SecondaryKey, en.Attestation.Token)
	}
	secrets = append(secrets, "the-webhook-secret-42")
	// Failing requests that carry secrets are not logged either.
	e.do("POST", enrollments, e.admin, map[string]any{"id": "sym", "type": "group",
		"attestation": map[string]string{"type": "symmetric_key", "primaryKey": base64.StdEncoding.EncodeToString([]byte("conflicting-key-0123456789"))}}).problem(t, 409, gatehouse.EConflict)
	secrets = append(secrets, base64.StdEncoding.EncodeToString([]byte("conflicting-key-0123456789")))
	var seen strings.Builder
	for _, path := range []string{enrollments, enrollments + "/sym", enrollments + "/tok", enrollments + "/ind", "/v1/scopes/default/events?limit=1000"} {
		seen.Write(e.do("GET", path, e.admin, nil).want(t, 200).body)
	}
	noSecrets(t, "GET answers", seen.String(), secrets...)
	noSecrets(t, "the access log", e.logs.String(), secrets...)
	if !strings.Contains(e.logs.String(), `"route":"POST /v1/scopes/{scope}/enrollments"`) {
		t.Errorf("no access log line for the creations:\n%s", e.logs.String())
	}
	var rec map[string]any
	for line := range strings.Lines(e.logs.String()) {
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
	}
}
