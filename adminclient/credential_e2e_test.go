package adminclient_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func newCSR(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func certsOf(t *testing.T, s []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for b, rest := pem.Decode(s); b != nil; b, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatalf("no certificates in %q", s)
	}
	return out
}

func TestCertificates(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	c := n.admin
	if _, err := c.CreateDevice(ctx, "default", registry.DeviceCreate{ID: "dev-1"}); err != nil {
		t.Fatal(err)
	}

	chainPEM, err := c.CAChainPEM(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	chain := certsOf(t, chainPEM)
	info, err := c.CAInfo(ctx, "default")
	if err != nil || info.Chain != string(chainPEM) || info.Scope != "default" || info.Imported {
		t.Fatalf("CAInfo = %+v, %v", info, err)
	}

	ic, err := c.IssueCertificate(ctx, "default", "dev-1", newCSR(t))
	if err != nil {
		t.Fatal(err)
	}
	leaf := certsOf(t, []byte(ic.Certificate))[0]
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(chain[len(chain)-1])
	inter.AddCert(chain[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued certificate does not verify against CAChainPEM: %v", err)
	}
	ic2, err := c.IssueCertificate(ctx, "default", "dev-1", newCSR(t))
	if err != nil {
		t.Fatal(err)
	}

	creds, err := c.DeviceCredentials(ctx, "default", "dev-1")
	if err != nil || len(creds) != 2 {
		t.Fatalf("DeviceCredentials = %v, %v", creds, err)
	}
	var all []string
	for cr, err := range c.Credentials(ctx, "default", adminclient.CredentialListOptions{Limit: 1, Kinds: []gatehouse.CredentialKind{gatehouse.CredentialX509}}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, cr.Serial)
	}
	if want := []string{ic.Serial, ic2.Serial}; len(all) != 2 || !slices.Contains(all, want[0]) || !slices.Contains(all, want[1]) {
		t.Errorf("Credentials = %q, want %q", all, want)
	}
	page, err := c.ListCredentials(ctx, "default", adminclient.CredentialListOptions{DeviceID: "dev-1", ExpiringBefore: time.Now().Add(time.Hour)})
	if err != nil || len(page.Items) != 0 {
		t.Errorf("ListCredentials expiring within the hour = %+v, %v", page, err)
	}

	ocspReq, err := ocsp.CreateRequest(leaf, chain[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	status := func() int {
		t.Helper()
		der, err := c.OCSP(ctx, "default", ocspReq)
		if err != nil {
			t.Fatal(err)
		}
		res, err := ocsp.ParseResponseForCert(der, leaf, chain[0])
		if err != nil {
			t.Fatal(err)
		}
		return res.Status
	}
	if st := status(); st != ocsp.Good {
		t.Errorf("OCSP before revocation: %d, want good", st)
	}
	cred, err := c.RevokeCertificate(ctx, "default", ic.Serial, "keyCompromise")
	if err != nil || cred.Status != gatehouse.CredentialRevoked || cred.RevocationReason != "keyCompromise" {
		t.Fatalf("RevokeCertificate = %+v, %v", cred, err)
	}
	_, err = c.RevokeCertificate(ctx, "default", ic.Serial, "")
	wantCode(t, "revoke twice", err, 409, gatehouse.EAlreadyRevoked)
	_, err = c.RevokeCertificate(ctx, "default", "abcdef", "")
	wantCode(t, "revoke unknown serial", err, 404, gatehouse.ENotFound)
	_, err = c.RevokeCertificate(ctx, "default", ic2.Serial, "boredom")
	wantCode(t, "revoke with a bad reason", err, 400, gatehouse.EInvalid)
	if st := status(); st != ocsp.Revoked {
		t.Errorf("OCSP after revocation: %d, want revoked", st)
	}

	der, err := c.CRL(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil || crl.CheckSignatureFrom(chain[0]) != nil {
		t.Fatalf("CRL: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("CRL lists %+v, want %s", crl.RevokedCertificateEntries, ic.Serial)
	}
	pemCRL, err := c.CRL(ctx, "default", false)
	if b, _ := pem.Decode(pemCRL); err != nil || b == nil || b.Type != "X509 CRL" {
		t.Errorf("CRL as PEM: %q, %v", pemCRL, err)
	}

	_, err = c.IssueCertificate(ctx, "default", "dev-1", []byte("garbage"))
	wantCode(t, "garbage CSR", err, 400, gatehouse.ECSRInvalid)
	_, err = c.IssueCertificate(ctx, "default", "dev-1", []byte(ic.Certificate))
	wantCode(t, "certificate as CSR", err, 400, gatehouse.EInvalidPEM)

	// Policy.
	sc, err := c.SetScopePolicy(ctx, "default", gatehouse.ScopePolicy{CertValidity: gatehouse.Duration(30 * 24 * time.Hour)})
	if err != nil || time.Duration(sc.Policy.CertValidity) != 30*24*time.Hour {
		t.Fatalf("SetScopePolicy = %+v, %v", sc, err)
	}
	ic3, err := c.IssueCertificate(ctx, "default", "dev-1", newCSR(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := ic3.NotAfter.Sub(ic3.NotBefore); d > 30*24*time.Hour+time.Hour || d < 30*24*time.Hour-time.Hour {
		t.Errorf("validity %s under a 30-day policy", d)
	}
	_, err = c.SetScopePolicy(ctx, "default", gatehouse.ScopePolicy{CertValidity: gatehouse.Duration(time.Minute)})
	wantCode(t, "policy too short", err, 400, gatehouse.EInvalid)

	// Import an operator CA.
	certPEM, keyPEM, rootPEM := ownCA(t)
	info, err = c.ImportCA(ctx, "default", registry.CAImport{Certificate: certPEM, PrivateKey: keyPEM, Chain: rootPEM})
	if err != nil || !info.Imported || info.Chain != certPEM+rootPEM {
		t.Fatalf("ImportCA = %+v, %v", info, err)
	}
	if got, err := c.CAChainPEM(ctx, "default"); err != nil || string(got) != certPEM+rootPEM {
		t.Errorf("CAChainPEM after import = %q, %v", got, err)
	}
	_, err = c.ImportCA(ctx, "default", registry.CAImport{Certificate: ic.Certificate, PrivateKey: keyPEM})
	wantCode(t, "import a leaf", err, 400, gatehouse.EInvalidCA)

	// Another scope's token sees nothing of scope default.
	if _, err := c.CreateScope(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	g, err := c.CreateToken(ctx, "other", registry.TokenRequest{Name: "o", Role: gatehouse.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	o := n.client(t, g.Secret)
	_, err = o.CAChainPEM(ctx, "default")
	wantCode(t, "other scope's CA", err, 404, gatehouse.ENotFound)
	_, err = o.RevokeCertificate(ctx, "default", ic2.Serial, "")
	wantCode(t, "other scope revokes", err, 404, gatehouse.ENotFound)
}

// ownCA makes an operator's root and issuing CA: the issuing CA's
// certificate and key, and the root, in PEM.
func ownCA(t *testing.T) (certPEM, keyPEM, rootPEM string) {
	t.Helper()
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Operator Root"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(10 * 365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Operator Issuing CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(5 * 365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}))
}
