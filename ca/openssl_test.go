package ca

import (
	"crypto/x509"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// These tests check what the CA makes with openssl, a second implementation
// that shares no code with crypto/x509. They use the real clock, since
// openssl checks validity against it, and skip where openssl is missing.

func openssl(t *testing.T, dir string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is not installed (scripts/test installs it)")
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantContains(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("openssl output lacks %q:\n%s", w, out)
		}
	}
}

// realScopeCA is a scope CA below an installation root, both valid now.
func realScopeCA(t *testing.T) *Authority {
	t.Helper()
	root, err := LoadOrCreateInstallationCA(t.Context(), newMemStore(), mustKeyring(t), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewScopeCA(root, "default", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// CSRs from openssl, of each accepted kind, become certificates that
// openssl verifies up the chain for TLS client use.
func TestOpenSSLDeviceCertificate(t *testing.T) {
	a := realScopeCA(t)
	for _, kind := range []struct{ name, newkey string }{
		{"P-256", "ec -pkeyopt ec_paramgen_curve:P-256"},
		{"P-384", "ec -pkeyopt ec_paramgen_curve:P-384"},
		{"Ed25519", "ed25519"},
		{"RSA 2048", "rsa:2048"},
	} {
		t.Run(kind.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"req", "-new", "-nodes", "-keyout", "dev.key", "-out", "dev.csr", "-subj", "/CN=not-the-device/O=Evil"}
			newkey := strings.Fields(kind.newkey)
			args = append(args, "-newkey", newkey[0])
			args = append(args, newkey[1:]...)
			openssl(t, dir, args...)
			csr, err := ParseCSR(readFile(t, dir, "dev.csr"))
			if err != nil {
				t.Fatal(err)
			}
			der, err := a.IssueDeviceCertificate(csr, "default", "dev-1", 24*time.Hour, time.Now(),
				WithCRLDistributionPoint("http://gatehouse.example/crl/default.crl"),
				WithOCSPServer("http://gatehouse.example/ocsp/default"))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "leaf.pem", certPEM(mustParse(t, der)))
			writeFile(t, dir, "chain.pem", a.ChainPEM())
			out := openssl(t, dir, "verify", "-CAfile", "chain.pem", "-purpose", "sslclient", "leaf.pem")
			wantContains(t, out, "leaf.pem: OK")
			out = openssl(t, dir, "x509", "-in", "leaf.pem", "-noout", "-text")
			wantContains(t, out,
				"Subject: CN = dev-1\n",
				"URI:urn:gatehouse:default:dev-1",
				"CA:FALSE",
				"TLS Web Client Authentication",
				"Digital Signature",
				"URI:http://gatehouse.example/crl/default.crl",
				"OCSP - URI:http://gatehouse.example/ocsp/default",
				"Issuer: O = Gatehouse, CN = Gatehouse default Issuing CA",
			)
			if strings.Contains(out, "Evil") || strings.Contains(out, "not-the-device") {
				t.Errorf("the CSR's subject reached the certificate:\n%s", out)
			}
			if kind.name == "RSA 2048" {
				wantContains(t, out, "Digital Signature, Key Encipherment")
			}
			// openssl's own key pairs with the certificate.
			if out := openssl(t, dir, "x509", "-in", "leaf.pem", "-noout", "-pubkey"); !strings.Contains(out, "PUBLIC KEY") {
				t.Errorf("no public key:\n%s", out)
			}
		})
	}
}

// CAs made with openssl, of each accepted key type, import, and openssl
// verifies what they issue: the signature algorithm identifiers for
// ecdsa-with-SHA256/SHA384, Ed25519 and sha256WithRSAEncryption are right.
func TestOpenSSLImportedCA(t *testing.T) {
	dir := t.TempDir()
	for _, kind := range []struct{ name, newkey string }{
		{"P-256", "ec -pkeyopt ec_paramgen_curve:P-256"},
		{"P-384", "ec -pkeyopt ec_paramgen_curve:P-384"},
		{"Ed25519", "ed25519"},
		{"RSA 3072", "rsa:3072"},
	} {
		t.Run(kind.name, func(t *testing.T) {
			dir := t.TempDir()
			newkey := strings.Fields(kind.newkey)
			args := append([]string{"req", "-x509", "-nodes", "-newkey"}, newkey...)
			openssl(t, dir, append(args, "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=Operator CA",
				"-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
				"-addext", "keyUsage=critical,keyCertSign,cRLSign")...)
			a, err := ParseImportedCA(readFile(t, dir, "ca.pem"), readFile(t, dir, "ca.key"), nil, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			csr := newCSR(t, newKey(t, "p256"))
			der, err := a.IssueDeviceCertificate(csr, "plant-7", "dev-1", time.Hour, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "leaf.pem", certPEM(mustParse(t, der)))
			wantContains(t, openssl(t, dir, "verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "leaf.pem"), "leaf.pem: OK")
			crl, err := a.CreateCRL([]RevokedCertificate{{Serial: big.NewInt(5), RevokedAt: time.Now()}}, 1, time.Now(), time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "crl.der", crl)
			wantContains(t, openssl(t, dir, "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout"), "verify OK")
		})
	}

	// Without a subject key identifier it is refused.
	openssl(t, dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "noski.key", "-out", "noski.pem", "-days", "30", "-subj", "/CN=No SKI CA",
		"-addext", "basicConstraints=critical,CA:TRUE",
		"-addext", "keyUsage=critical,keyCertSign,cRLSign",
		"-addext", "subjectKeyIdentifier=none", "-addext", "authorityKeyIdentifier=none")
	_, err := ParseImportedCA(readFile(t, dir, "noski.pem"), readFile(t, dir, "noski.key"), nil, time.Now())
	wantCode(t, err, "invalid_ca")
}

func TestOpenSSLCRL(t *testing.T) {
	a := realScopeCA(t)
	dir := t.TempDir()
	now := time.Now()
	der, err := a.CreateCRL([]RevokedCertificate{
		{Serial: big.NewInt(0x1234abcd), RevokedAt: now.Add(-time.Hour), Reason: 1},
		{Serial: big.NewInt(0x77), RevokedAt: now.Add(-time.Minute), Reason: 4},
	}, 3, now, now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "crl.der", der)
	writeFile(t, dir, "chain.pem", a.ChainPEM())
	wantContains(t, openssl(t, dir, "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "chain.pem", "-noout"), "verify OK")
	wantContains(t, openssl(t, dir, "crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"),
		"Serial Number: 1234ABCD", "Key Compromise", "Serial Number: 77", "Superseded",
		"X509v3 CRL Number: \n                3", "Issuer: O = Gatehouse, CN = Gatehouse default Issuing CA")
}

func TestOpenSSLOCSP(t *testing.T) {
	a := realScopeCA(t)
	leaf := issueLeaf(t, a, time.Now())
	revokedAt := time.Now().Add(-time.Hour)
	for _, tt := range []struct {
		name   string
		status OCSPStatus
		want   []string
	}{
		{"good", OCSPStatus{Status: ocsp.Good}, []string{"leaf.pem: good"}},
		{"revoked", OCSPStatus{Status: ocsp.Revoked, RevokedAt: revokedAt, Reason: ocsp.KeyCompromise}, []string{"leaf.pem: revoked", "Reason: keyCompromise"}},
		{"unknown", OCSPStatus{Status: ocsp.Unknown}, []string{"leaf.pem: unknown"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "ca.pem", a.CertPEM())
			writeFile(t, dir, "chain.pem", a.ChainPEM())
			writeFile(t, dir, "leaf.pem", certPEM(leaf))
			openssl(t, dir, "ocsp", "-issuer", "ca.pem", "-cert", "leaf.pem", "-reqout", "req.der")
			resp, err := a.OCSPResponse(readFile(t, dir, "req.der"), func(*big.Int) (OCSPStatus, error) { return tt.status, nil }, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "resp.der", resp)
			out := openssl(t, dir, "ocsp", "-respin", "resp.der", "-issuer", "ca.pem", "-CAfile", "chain.pem", "-cert", "leaf.pem")
			wantContains(t, out, append([]string{"Response verify OK"}, tt.want...)...)
		})
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
