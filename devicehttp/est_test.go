package devicehttp

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/pkcs7"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// parseCertsOnly reads the certificates of what pkcs7.CertsOnly writes;
// the tests use it, and openssl in est.sh checks the same bytes
// independently.
func parseCertsOnly(der []byte) ([]*x509.Certificate, error) {
	ders, err := pkcs7.ParseCertsOnly(der)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// estCerts decodes an EST certs-only response.
func estCerts(t testing.TB, r *resp) []*x509.Certificate {
	t.Helper()
	der, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(r.body)))
	if err != nil {
		t.Fatalf("response is not base64: %v\n%s", err, r.body)
	}
	certs, err := parseCertsOnly(der)
	if err != nil {
		t.Fatalf("response is not PKCS #7: %v", err)
	}
	return certs
}

func TestPKCS7RoundTrip(t *testing.T) {
	root := newRootCA(t, "Root")
	inter := root.intermediate(t, "Inter")
	leaf, _ := inter.leaf(t, "leaf")
	for _, certs := range [][]*x509.Certificate{nil, {leaf}, {leaf, inter.cert, root.cert}} {
		var ders [][]byte
		for _, c := range certs {
			ders = append(ders, c.Raw)
		}
		got, err := parseCertsOnly(pkcs7.CertsOnly(ders))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(certs) {
			t.Fatalf("got %d certificates, want %d", len(got), len(certs))
		}
		for i := range got {
			if !got[i].Equal(certs[i]) {
				t.Errorf("certificate %d differs", i)
			}
		}
	}
	b := base64Lines(bytes.Repeat([]byte{1}, 200))
	for line := range strings.Lines(string(b)) {
		if len(strings.TrimRight(line, "\n")) > 76 || !strings.HasSuffix(line, "\n") {
			t.Errorf("line %q: want at most 76 characters and a line end", line)
		}
	}
}

func TestESTCACerts(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/.well-known/est/cacerts", "/.well-known/est/default/cacerts"} {
		r := e.do(nil, http.MethodGet, path, nil)
		if r.status != 200 || r.header.Get("Content-Type") != "application/pkcs7-mime" || r.header.Get("Content-Transfer-Encoding") != "base64" {
			t.Fatalf("%s: got %d %q %q", path, r.status, r.header.Get("Content-Type"), r.header.Get("Content-Transfer-Encoding"))
		}
		certs := estCerts(t, r)
		want, err := e.prov.CAChain(context.Background(), "default")
		if err != nil {
			t.Fatal(err)
		}
		if len(certs) != len(want) || len(certs) < 2 {
			t.Fatalf("got %d certificates, want the scope CA and the root (%d)", len(certs), len(want))
		}
		for i := range certs {
			if !certs[i].Equal(want[i]) {
				t.Errorf("certificate %d differs from CAChain", i)
			}
		}
		if !certs[len(certs)-1].Equal(e.root.Certificate()) {
			t.Errorf("the last certificate is not the installation root")
		}
	}
	r := e.do(nil, http.MethodGet, "/.well-known/est/nosuch/cacerts", nil)
	if r.status != 404 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("unknown label: got %d %q %s, want 404 text/plain", r.status, r.header.Get("Content-Type"), r.body)
	}
	r = e.do(nil, http.MethodGet, "/.well-known/est/csrattrs", nil)
	if r.status != http.StatusNoContent {
		t.Errorf("csrattrs: got %d, want 204", r.status)
	}
}

// estEnroll posts a CSR (base64 of DER, wrapped at 64 columns as openssl
// base64 does) to simpleenroll or simplereenroll.
func (e *env) estPost(c *http.Client, op string, csrDER []byte, hdr ...string) *resp {
	e.t.Helper()
	b64 := base64.StdEncoding.EncodeToString(csrDER)
	var body strings.Builder
	for len(b64) > 64 {
		body.WriteString(b64[:64] + "\n")
		b64 = b64[64:]
	}
	body.WriteString(b64 + "\n")
	return e.do(c, http.MethodPost, "/.well-known/est/"+op, []byte(body.String()), append([]string{"Content-Type", "application/pkcs10"}, hdr...)...)
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestESTSimpleEnrollAndReenroll(t *testing.T) {
	e := newEnv(t)
	// A short renewal overlap, so that the old certificate is superseded
	// within the test.
	if _, err := e.reg.SetScopePolicy(context.Background(), e.admin, "default", gatehouse.ScopePolicy{RenewalOverlap: gatehouse.Duration(time.Second)}); err != nil {
		t.Fatal(err)
	}
	en := e.enroll(registry.EnrollmentCreate{ID: "est-tokens", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, MaxUses: 10}})
	cacerts := estCerts(t, e.do(nil, http.MethodGet, "/.well-known/est/cacerts", nil))

	// Missing authentication: 401 with the Basic challenge.
	key := newKey(t)
	r := e.estPost(nil, "simpleenroll", newCSR(t, key, "dev-est-1"))
	if r.status != 401 || r.header.Get("WWW-Authenticate") != `Basic realm="gatehouse-est"` {
		t.Fatalf("no auth: got %d %q, want 401 with a Basic challenge", r.status, r.header.Get("WWW-Authenticate"))
	}
	// A wrong token: the same.
	r = e.estPost(nil, "simpleenroll", newCSR(t, key, "dev-est-1"), "Authorization", basic("dev-est-1", "wrong-token-wrong-token"))
	if r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("wrong token: got %d %s, want 401", r.status, r.body)
	}

	r = e.estPost(nil, "simpleenroll", newCSR(t, key, "dev-est-1"), "Authorization", basic("dev-est-1", en.Attestation.Token))
	if r.status != 200 || r.header.Get("Content-Type") != "application/pkcs7-mime; smime-type=certs-only" {
		t.Fatalf("simpleenroll: got %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	issued := estCerts(t, r)
	if len(issued) != 1 {
		t.Fatalf("got %d certificates, want the issued one", len(issued))
	}
	old := issued[0]
	verify(t, old, cacerts)

	// Re-enroll with the issued certificate as the TLS client certificate.
	c := e.client(key, old.Raw)
	key2 := newKey(t)
	r = e.estPost(c, "simplereenroll", newCSR(t, key2, "dev-est-1"))
	if r.status != 200 {
		t.Fatalf("simplereenroll: got %d %s", r.status, r.body)
	}
	renewed := estCerts(t, r)[0]
	verify(t, renewed, cacerts)
	if renewed.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Fatal("re-enroll returned the same certificate")
	}
	// After the overlap the old certificate no longer authenticates; the
	// new one does.
	time.Sleep(1500 * time.Millisecond)
	r = e.estPost(e.client(key, old.Raw), "simplereenroll", newCSR(t, key, "dev-est-1"))
	if r.status != 401 {
		t.Fatalf("re-enroll with the superseded certificate: got %d %s, want 401", r.status, r.body)
	}
	creds, err := e.reg.DeviceCredentials(context.Background(), e.admin, "default", "dev-est-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, cr := range creds {
		if cr.Serial == old.SerialNumber.Text(16) && cr.EffectiveStatus(time.Now()) != gatehouse.CredentialSuperseded {
			t.Errorf("old credential: got %s, want superseded", cr.EffectiveStatus(time.Now()))
		}
	}
	r = e.estPost(e.client(key2, renewed.Raw), "simplereenroll", newCSR(t, key2, "dev-est-1"))
	if r.status != 200 {
		t.Fatalf("re-enroll with the renewed certificate: got %d %s", r.status, r.body)
	}
	// Re-enroll without a client certificate.
	r = e.estPost(nil, "simplereenroll", newCSR(t, key2, "dev-est-1"))
	if r.status != 401 {
		t.Fatalf("re-enroll without a certificate: got %d, want 401", r.status)
	}
}

func TestESTSimpleEnrollX509AndNoCertificatePolicy(t *testing.T) {
	e := newEnv(t)
	maker := newRootCA(t, "Maker")
	e.enroll(registry.EnrollmentCreate{ID: "maker", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestX509, Certificate: maker.pem(), Verified: true}})
	leaf, key := maker.leaf(t, "dev-factory-1")
	r := e.estPost(e.client(key, leaf.Raw), "simpleenroll", newCSR(t, newKey(t), "dev-factory-1"))
	if r.status != 200 {
		t.Fatalf("simpleenroll with a factory certificate: got %d %s", r.status, r.body)
	}
	cacerts := estCerts(t, e.do(nil, http.MethodGet, "/.well-known/est/cacerts", nil))
	verify(t, estCerts(t, r)[0], cacerts)

	none := e.enroll(registry.EnrollmentCreate{ID: "dev-nocert", Type: gatehouse.EnrollmentIndividual,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken},
		Credentials: gatehouse.CredentialPolicy{Certificate: gatehouse.CertNone}})
	r = e.estPost(nil, "simpleenroll", newCSR(t, newKey(t), "dev-nocert"), "Authorization", basic("dev-nocert", none.Attestation.Token))
	if r.status != 400 || !strings.Contains(string(r.body), "issues no certificates") {
		t.Fatalf("enrollment without certificates: got %d %s, want 400", r.status, r.body)
	}
	for _, d := range e.devices() {
		if d == "dev-nocert" {
			t.Error("a refused EST enrollment left a device behind")
		}
	}
}

func TestESTBadRequests(t *testing.T) {
	e := newEnv(t)
	en := e.enroll(registry.EnrollmentCreate{ID: "est-tokens", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, MaxUses: 100}})
	auth := func(regID string) string { return basic(regID, en.Attestation.Token) }
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"empty body", "POST", "/.well-known/est/simpleenroll", "", 400},
		{"garbage base64", "POST", "/.well-known/est/simpleenroll", "!!!! not base64 ****", 400},
		{"base64 of garbage", "POST", "/.well-known/est/simpleenroll", base64.StdEncoding.EncodeToString([]byte("hello, world")), 400},
		{"oversize", "POST", "/.well-known/est/simpleenroll", strings.Repeat("QUFB", DefaultMaxBodyBytes/4+1), 413},
		{"unknown scope", "POST", "/.well-known/est/nosuch/simpleenroll", base64.StdEncoding.EncodeToString(newCSR(t, newKey(t), "x")), 401},
		{"wrong method", "GET", "/.well-known/est/simpleenroll", "", 405},
		{"unknown resource", "GET", "/.well-known/est/serverkeygen", "", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(nil, tc.method, tc.path, []byte(tc.body), "Content-Type", "application/pkcs10", "Authorization", auth("dev-est-bad"))
			if r.status != tc.status || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
				t.Fatalf("got %d %q %s, want %d text/plain", r.status, r.header.Get("Content-Type"), r.body, tc.status)
			}
		})
	}
	if d := e.devices(); len(d) != 0 {
		t.Errorf("devices after bad requests: %q, want none", d)
	}
}

// TestESTShellScript drives the server with curl and openssl, as a user
// would: testdata/est.sh.
func TestESTShellScript(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/test installs it)", tool)
		}
	}
	e := newEnv(t)
	en := e.enroll(registry.EnrollmentCreate{ID: "est-script", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, MaxUses: 5}})
	cmd := exec.Command("bash", "testdata/est.sh")
	cmd.Env = append(os.Environ(), "EST_URL="+e.srv.URL+"/.well-known/est", "EST_CA_FILE="+e.caFile,
		"EST_REGISTRATION_ID=dev-curl-1", "EST_TOKEN="+en.Attestation.Token, "WORK_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("est.sh output:\n%s", out)
	if err != nil {
		t.Fatalf("est.sh: %v", err)
	}
	if !strings.Contains(string(out), "OK") {
		t.Fatalf("est.sh did not report OK")
	}
	if got := e.devices(); len(got) != 1 || got[0] != "dev-curl-1" {
		t.Errorf("devices: got %q, want dev-curl-1", got)
	}
}
