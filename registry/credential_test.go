package registry_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/secret"
	"github.com/gatehouse-iot/gatehouse/store/sqlite"
)

// caFixture is a registry with an installation root, a keyring and a clock
// the test moves.
type caFixture struct {
	reg   *registry.Service
	admin *gatehouse.Principal
	ctx   context.Context
	mu    sync.Mutex
	now   time.Time
}

func (f *caFixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func newCAFixture(t *testing.T) *caFixture {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	kr, err := secret.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &caFixture{ctx: context.Background(), now: time.Now().UTC()}
	clock := func() time.Time {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.now
	}
	root, err := ca.LoadOrCreateInstallationCA(f.ctx, st, kr, clock)
	if err != nil {
		t.Fatal(err)
	}
	f.reg = registry.New(st, registry.WithClock(clock), registry.WithCA(root, kr))
	if err := f.reg.EnsureScope(f.ctx, gatehouse.DefaultScope); err != nil {
		t.Fatal(err)
	}
	grant, err := f.reg.CreateGlobalAdminToken(f.ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if f.admin, err = f.reg.Authenticate(f.ctx, grant.Secret); err != nil {
		t.Fatal(err)
	}
	return f
}

func newCSR(t *testing.T) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func parseCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *caFixture) device(t *testing.T, scope, id string) {
	t.Helper()
	if _, err := f.reg.CreateDevice(f.ctx, f.admin, scope, registry.DeviceCreate{ID: id}); err != nil {
		t.Fatal(err)
	}
}

func TestIssueRenewRevoke(t *testing.T) {
	f := newCAFixture(t)
	f.device(t, "default", "d1")
	iss, err := f.reg.IssueCertificate(f.ctx, f.admin, "default", "d1", newCSR(t))
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCert(t, iss.Certificate)
	if leaf.Subject.CommonName != "d1" || len(leaf.URIs) != 1 || leaf.URIs[0].String() != "urn:gatehouse:default:d1" {
		t.Errorf("subject %q URIs %v", leaf.Subject.CommonName, leaf.URIs)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < 89*24*time.Hour || got > 91*24*time.Hour {
		t.Errorf("validity %s, want the 90-day default", got)
	}
	if _, _, err := f.reg.AuthenticateCertificate(f.ctx, "default", leaf, nil); err != nil {
		t.Fatalf("fresh certificate does not authenticate: %v", err)
	}

	// Renewal: the old certificate keeps working through the overlap, then not.
	iss2, err := f.reg.IssueCertificate(f.ctx, f.admin, "default", "d1", newCSR(t))
	if err != nil {
		t.Fatal(err)
	}
	leaf2 := parseCert(t, iss2.Certificate)
	if _, _, err := f.reg.AuthenticateCertificate(f.ctx, "default", leaf, nil); err != nil {
		t.Errorf("old certificate refused inside the overlap: %v", err)
	}
	f.advance(gatehouse.DefaultRenewalOverlap + time.Second)
	_, _, err = f.reg.AuthenticateCertificate(f.ctx, "default", leaf, nil)
	wantCode(t, err, gatehouse.EUnauthenticated)
	creds, err := f.reg.DeviceCredentials(f.ctx, f.admin, "default", "d1")
	if err != nil || len(creds) != 2 {
		t.Fatalf("credentials: %v %v", creds, err)
	}
	status := map[string]gatehouse.CredentialStatus{}
	for _, c := range creds {
		status[c.Serial] = c.Status
	}
	if status[iss.Serial] != gatehouse.CredentialSuperseded || status[iss2.Serial] != gatehouse.CredentialActive {
		t.Errorf("statuses = %v", status)
	}

	// Revocation takes effect at the next check, and shows in CRL and OCSP.
	if _, err := f.reg.RevokeCertificate(f.ctx, f.admin, "default", iss2.Serial, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.reg.AuthenticateCertificate(f.ctx, "default", leaf2, nil)
	wantCode(t, err, gatehouse.EUnauthenticated)
	_, err = f.reg.RevokeCertificate(f.ctx, f.admin, "default", iss2.Serial, "keyCompromise")
	wantCode(t, err, gatehouse.EAlreadyRevoked)
	_, err = f.reg.RevokeCertificate(f.ctx, f.admin, "default", "abcdef", "")
	wantCode(t, err, gatehouse.ENotFound)
	_, err = f.reg.RevokeCertificate(f.ctx, f.admin, "default", iss.Serial, "becauseISaidSo")
	wantCode(t, err, gatehouse.EInvalid)

	crl, err := f.reg.CRL(f.ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	rl, err := x509.ParseRevocationList(crl.DER)
	if err != nil {
		t.Fatal(err)
	}
	caCert := parseCert(t, iss.Chain)
	if err := rl.CheckSignatureFrom(caCert); err != nil {
		t.Errorf("CRL signature: %v", err)
	}
	if len(rl.RevokedCertificateEntries) != 1 || rl.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf2.SerialNumber) != 0 ||
		rl.RevokedCertificateEntries[0].ReasonCode != 1 {
		t.Errorf("CRL entries = %+v", rl.RevokedCertificateEntries)
	}
	for _, c := range []struct {
		cert *x509.Certificate
		want int
	}{{leaf, ocsp.Good}, {leaf2, ocsp.Revoked}} {
		req, _ := ocsp.CreateRequest(c.cert, caCert, nil)
		raw, err := f.reg.OCSP(f.ctx, "default", req)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ocsp.ParseResponseForCert(raw, c.cert, caCert)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != c.want {
			t.Errorf("OCSP status of %x = %d, want %d", c.cert.SerialNumber, resp.Status, c.want)
		}
	}
	evs, _ := f.reg.Events(f.ctx, f.admin, "default", 0, 100)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	want := "[scope.created ca.created device.created credential.issued credential.renewed credential.revoked]"
	if fmt.Sprint(types) != want {
		t.Errorf("events = %v, want %s", types, want)
	}
}

func TestDecommissionRevokesCredentials(t *testing.T) {
	f := newCAFixture(t)
	f.device(t, "default", "d1")
	iss, err := f.reg.IssueCertificate(f.ctx, f.admin, "default", "d1", newCSR(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.SetState(f.ctx, f.admin, "default", "d1", gatehouse.StateDecommissioned, "eol", ""); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.reg.AuthenticateCertificate(f.ctx, "default", parseCert(t, iss.Certificate), nil)
	wantCode(t, err, gatehouse.EUnauthenticated)
	crl, _ := f.reg.CRL(f.ctx, "default")
	rl, _ := x509.ParseRevocationList(crl.DER)
	if len(rl.RevokedCertificateEntries) != 1 || rl.RevokedCertificateEntries[0].ReasonCode != 5 {
		t.Errorf("CRL after decommission = %+v", rl.RevokedCertificateEntries)
	}
	_, err = f.reg.IssueCertificate(f.ctx, f.admin, "default", "d1", newCSR(t))
	wantCode(t, err, gatehouse.ECredentialDenied)
}

func TestDeviceStateGatesCertificate(t *testing.T) {
	f := newCAFixture(t)
	f.device(t, "default", "d1")
	iss, err := f.reg.IssueCertificate(f.ctx, f.admin, "default", "d1", newCSR(t))
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCert(t, iss.Certificate)
	if _, err := f.reg.SetState(f.ctx, f.admin, "default", "d1", gatehouse.StateInactive, "", ""); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.reg.AuthenticateCertificate(f.ctx, "default", leaf, nil)
	wantCode(t, err, gatehouse.EForbidden)
}

// TestCrossScopeCertificates: a certificate of scope A fails every check in
// scope B.
func TestCrossScopeCertificates(t *testing.T) {
	f := newCAFixture(t)
	if _, err := f.reg.CreateScope(f.ctx, f.admin, "b"); err != nil {
		t.Fatal(err)
	}
	f.device(t, "default", "d1")
	f.device(t, "b", "d1")
	iss, err := f.reg.IssueCertificate(f.ctx, f.admin, "default", "d1", newCSR(t))
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCert(t, iss.Certificate)
	caA := parseCert(t, iss.Chain)
	_, _, err = f.reg.AuthenticateCertificate(f.ctx, "b", leaf, []*x509.Certificate{caA})
	wantCode(t, err, gatehouse.EUnauthenticated)
	_, err = f.reg.RevokeCertificate(f.ctx, f.admin, "b", iss.Serial, "")
	wantCode(t, err, gatehouse.ENotFound)
	infoB, err := f.reg.CA(f.ctx, f.admin, "b")
	if err != nil {
		t.Fatal(err)
	}
	caB := parseCert(t, infoB.Chain)
	if caB.Equal(caA) {
		t.Fatal("scopes share an issuing CA")
	}
	req, _ := ocsp.CreateRequest(leaf, caA, nil)
	raw, err := f.reg.OCSP(f.ctx, "b", req)
	if err == nil {
		if resp, err := ocsp.ParseResponse(raw, nil); err == nil && resp.Status == ocsp.Good {
			t.Error("scope b's OCSP responder vouches for scope a's certificate")
		}
	}
	crlB, err := f.reg.CRL(f.ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	rl, _ := x509.ParseRevocationList(crlB.DER)
	if rl.CheckSignatureFrom(caA) == nil {
		t.Error("scope b's CRL is signed by scope a's CA")
	}
}

func TestSweepExpiry(t *testing.T) {
	f := newCAFixture(t)
	f.device(t, "default", "d1")
	if _, err := f.reg.SetScopePolicy(f.ctx, f.admin, "default", gatehouse.ScopePolicy{
		CertValidity: gatehouse.Duration(48 * time.Hour), ExpiryLeadTime: gatehouse.Duration(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	iss, err := f.reg.IssueCertificate(f.ctx, f.admin, "default", "d1", newCSR(t))
	if err != nil {
		t.Fatal(err)
	}
	count := func(typ string) int {
		evs, _ := f.reg.Events(f.ctx, f.admin, "default", 0, 1000)
		n := 0
		for _, e := range evs {
			if e.Type == typ {
				n++
			}
		}
		return n
	}
	if err := f.reg.Sweep(f.ctx); err != nil || count(gatehouse.EventCredentialExpiring) != 0 {
		t.Fatalf("sweep before the lead time: %v, %d expiring events", err, count(gatehouse.EventCredentialExpiring))
	}
	f.advance(30 * time.Hour)
	for range 3 { // once per credential, however often the sweep runs
		if err := f.reg.Sweep(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(gatehouse.EventCredentialExpiring); n != 1 {
		t.Errorf("%d credential.expiring events, want 1", n)
	}
	exp := time.Now().Add(48 * time.Hour)
	page, err := f.reg.ListCredentials(f.ctx, f.admin, "default", registry.CredentialQuery{ExpiringBefore: &exp})
	if err != nil || len(page.Items) != 1 || page.Items[0].Serial != iss.Serial {
		t.Errorf("expiring query: %v %v", page, err)
	}
	f.advance(20 * time.Hour)
	if err := f.reg.Sweep(f.ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(gatehouse.EventCredentialExpired); n != 1 {
		t.Errorf("%d credential.expired events, want 1", n)
	}
	creds, _ := f.reg.DeviceCredentials(f.ctx, f.admin, "default", "d1")
	if creds[0].Status != gatehouse.CredentialExpired {
		t.Errorf("status after expiry = %s", creds[0].Status)
	}
}

func TestIssueBadCSR(t *testing.T) {
	f := newCAFixture(t)
	f.device(t, "default", "d1")
	good := newCSR(t)
	b, _ := pem.Decode(good)
	tampered := append([]byte(nil), b.Bytes...)
	tampered[len(tampered)-3] ^= 1
	tests := []struct {
		name string
		csr  []byte
		code string
	}{
		{"garbage", []byte("not a csr"), ""},
		{"tampered signature", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}), gatehouse.ECSRInvalid},
	}
	for _, tt := range tests {
		_, err := f.reg.IssueCertificate(f.ctx, f.admin, "default", "d1", tt.csr)
		if err == nil || gatehouse.ErrorCode(err) == gatehouse.EInternal {
			t.Errorf("%s: got %v, want a specific client error", tt.name, err)
		}
		if tt.code != "" {
			wantCode(t, err, tt.code)
		}
	}
	creds, _ := f.reg.DeviceCredentials(f.ctx, f.admin, "default", "d1")
	if len(creds) != 0 {
		t.Errorf("refused CSRs left %d credentials", len(creds))
	}
}
