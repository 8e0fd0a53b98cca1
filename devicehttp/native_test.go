package devicehttp

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func parsePEMChain(t testing.TB, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatalf("no PEM certificates in %q", s)
	}
	return out
}

func (e *env) nativeProblem(r *resp, status int, code string) {
	e.t.Helper()
	var p problem
	r.json(e.t, &p)
	if r.status != status || p.Code != code || r.header.Get("Content-Type") != "application/problem+json" {
		e.t.Fatalf("got %d %q %s, want %d problem %s", r.status, r.header.Get("Content-Type"), r.body, status, code)
	}
}

func TestNativeRegisterRenewCA(t *testing.T) {
	e := newEnv(t)
	g := e.enroll(registry.EnrollmentCreate{ID: "sym-group", Type: gatehouse.EnrollmentGroup,
		Attestation:   gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey},
		InitialTags:   map[string]string{"fleet": "north"},
		InitialConfig: json.RawMessage(`{"interval":30}`),
		Allocation:    gatehouse.Allocation{Endpoints: []gatehouse.Endpoint{{Host: "mqtt.example.com:8883"}}}})
	sas := sasToken(t, deriveDeviceKey(t, g.Attestation.PrimaryKey, "dev-native-1"), "default", "dev-native-1", time.Now().Add(time.Hour), false)
	key := newKey(t)
	body := jsonBody(t, map[string]any{"registrationId": "dev-native-1", "csr": csrPEM(newCSR(t, key, "dev-native-1")), "payload": map[string]string{"fw": "1.2"}})
	r := e.do(nil, http.MethodPost, "/device/v1/default/register", body, "Authorization", sas, "Content-Type", "application/json")
	if r.status != 200 {
		t.Fatalf("register: got %d %s", r.status, r.body)
	}
	var out nativeRegistration
	r.json(t, &out)
	if out.DeviceID != "dev-native-1" || out.Scope != "default" || out.Status != "assigned" || out.Substatus != "initialAssignment" ||
		out.AssignedHub != "mqtt.example.com:8883" || out.Tags["fleet"] != "north" || string(out.Config) != `{"interval":30}` {
		t.Fatalf("register: got %s", r.body)
	}
	cert := parsePEMChain(t, out.Certificate)[0]
	chain := parsePEMChain(t, out.Chain)
	verify(t, cert, chain)

	// The CA endpoint gives the same chain.
	r = e.do(nil, http.MethodGet, "/device/v1/default/ca", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/pem-certificate-chain" {
		t.Fatalf("ca: got %d %q", r.status, r.header.Get("Content-Type"))
	}
	ca := parsePEMChain(t, string(r.body))
	if !slices.EqualFunc(ca, chain, (*x509.Certificate).Equal) {
		t.Errorf("ca: the chain differs from the registration's")
	}

	// Renew with the issued certificate.
	key2 := newKey(t)
	r = e.do(e.client(key, cert.Raw), http.MethodPost, "/device/v1/default/renew", jsonBody(t, map[string]string{"csr": csrPEM(newCSR(t, key2, "x"))}))
	if r.status != 200 {
		t.Fatalf("renew: got %d %s", r.status, r.body)
	}
	var ren nativeRenewal
	r.json(t, &ren)
	renewed := parsePEMChain(t, ren.Certificate)[0]
	verify(t, renewed, parsePEMChain(t, ren.Chain))
	if !renewed.NotAfter.Equal(ren.NotAfter) || renewed.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Errorf("renew: notAfter %v vs %v, or the same serial", ren.NotAfter, renewed.NotAfter)
	}
	// Renew without a certificate.
	r = e.do(nil, http.MethodPost, "/device/v1/default/renew", jsonBody(t, map[string]string{"csr": csrPEM(newCSR(t, key2, "x"))}))
	e.nativeProblem(r, 401, gatehouse.EUnauthenticated)
}

func TestNativeBootstrapTokenMaxUses(t *testing.T) {
	e := newEnv(t)
	en := e.enroll(registry.EnrollmentCreate{ID: "line-7", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, MaxUses: 2}})
	reg := func(regID string) *resp {
		return e.do(nil, http.MethodPost, "/device/v1/default/register", jsonBody(t, map[string]string{"registrationId": regID}),
			"Authorization", "Bootstrap "+en.Attestation.Token)
	}
	for _, id := range []string{"dev-tok-1", "dev-tok-2"} {
		if r := reg(id); r.status != 200 {
			t.Fatalf("register %s: got %d %s", id, r.status, r.body)
		}
	}
	e.nativeProblem(reg("dev-tok-3"), 401, gatehouse.EUnauthenticated)
	// Over EST too.
	r := e.estPost(nil, "simpleenroll", newCSR(t, newKey(t), "dev-tok-4"), "Authorization", basic("dev-tok-4", en.Attestation.Token))
	if r.status != 401 {
		t.Fatalf("EST with a used-up token: got %d %s, want 401", r.status, r.body)
	}
	if got, want := e.devices(), []string{"dev-tok-1", "dev-tok-2"}; !slices.Equal(got, want) {
		t.Errorf("devices: got %q, want %q", got, want)
	}
}

func TestNativeBadRequests(t *testing.T) {
	e := newEnv(t)
	en := e.enroll(registry.EnrollmentCreate{ID: "line-7", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, MaxUses: 100}})
	auth := "Bootstrap " + en.Attestation.Token
	for _, tc := range []struct {
		name, method, path, body, contentType, authz string
		status                                       int
		code                                         string
	}{
		{"malformed JSON", "POST", "/device/v1/default/register", `{"registrationId":`, "application/json", auth, 400, gatehouse.EInvalidJSON},
		{"unknown member", "POST", "/device/v1/default/register", `{"registrationId":"dev-n-1","regId":"x"}`, "", auth, 400, gatehouse.EUnknownField},
		{"trailing data", "POST", "/device/v1/default/register", `{"registrationId":"dev-n-2"}{}`, "", auth, 400, gatehouse.EInvalidJSON},
		{"no registrationId", "POST", "/device/v1/default/register", `{}`, "", auth, 400, gatehouse.EInvalid},
		{"bad CSR", "POST", "/device/v1/default/register", `{"registrationId":"dev-n-3","csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`, "", auth, 400, gatehouse.ECSRInvalid},
		{"CSR not PEM", "POST", "/device/v1/default/register", `{"registrationId":"dev-n-4","csr":"garbage"}`, "", auth, 400, gatehouse.ECSRInvalid},
		{"oversize", "POST", "/device/v1/default/register", `{"registrationId":"dev-n-5","payload":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`, "", auth, 413, gatehouse.EBodyTooLarge},
		{"wrong content type", "POST", "/device/v1/default/register", `{"registrationId":"dev-n-6"}`, "text/plain", auth, 415, gatehouse.EUnsupportedMedia},
		{"no credentials", "POST", "/device/v1/default/register", `{"registrationId":"dev-n-7"}`, "", "", 401, gatehouse.EUnauthenticated},
		{"wrong token", "POST", "/device/v1/default/register", `{"registrationId":"dev-n-8"}`, "", "Bootstrap wrong-wrong-wrong-wrong", 401, gatehouse.EUnauthenticated},
		{"unknown scope", "POST", "/device/v1/nosuch/register", `{"registrationId":"dev-n-9"}`, "", auth, 401, gatehouse.EUnauthenticated},
		{"unknown scope CA", "GET", "/device/v1/nosuch/ca", ``, "", "", 404, gatehouse.ENotFound},
		{"wrong method", "GET", "/device/v1/default/register", ``, "", "", 405, gatehouse.EMethodNotAllowed},
		{"unknown path", "GET", "/device/v1/default/nothing", ``, "", "", 404, gatehouse.ENotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.contentType != "" {
				hdr = append(hdr, "Content-Type", tc.contentType)
			}
			if tc.authz != "" {
				hdr = append(hdr, "Authorization", tc.authz)
			}
			e.nativeProblem(e.do(nil, tc.method, tc.path, []byte(tc.body), hdr...), tc.status, tc.code)
		})
	}
	if d := e.devices(); len(d) != 0 {
		t.Errorf("devices after bad requests: %q, want none", d)
	}
}
