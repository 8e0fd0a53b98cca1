package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// acceptedKeyKinds are the key types CheckPublicKey accepts, as newKey names
// them.
var acceptedKeyKinds = []string{"p256", "p384", "ed25519", "rsa2048", "rsa3072"}

// rsaKeys caches RSA keys: generating them takes long enough to matter when a
// test wants hundreds.
var rsaKeys struct {
	sync.Mutex
	m map[int][]*rsa.PrivateKey
}

// newKey returns a key of the given kind: p224, p256, p384, p521, ed25519 or
// rsaNNNN. RSA keys come from a small pool, so two calls may share one.
func newKey(tb testing.TB, kind string) crypto.Signer {
	tb.Helper()
	switch kind {
	case "p224":
		k, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
		return k
	case "p256":
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return k
	case "p384":
		k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		return k
	case "p521":
		k, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		return k
	case "ed25519":
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		return k
	}
	var bits int
	switch kind {
	case "rsa1024":
		bits = 1024
	case "rsa2048":
		bits = 2048
	case "rsa3072":
		bits = 3072
	case "rsa4096":
		bits = 4096
	default:
		tb.Fatalf("unknown key kind %q", kind)
	}
	rsaKeys.Lock()
	defer rsaKeys.Unlock()
	if rsaKeys.m == nil {
		rsaKeys.m = map[int][]*rsa.PrivateKey{}
	}
	pool := rsaKeys.m[bits]
	if len(pool) < 3 {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			tb.Fatal(err)
		}
		rsaKeys.m[bits] = append(pool, k)
		return k
	}
	return pool[int(randomByte())%len(pool)]
}

func randomByte() byte {
	var b [1]byte
	rand.Read(b[:])
	return b[0]
}

// newCSRDER returns a DER CSR signed by key, with a subject and a SAN that
// the CA must ignore.
func newCSRDER(tb testing.TB, key crypto.Signer) []byte {
	tb.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "i-want-to-be-someone-else", Organization: []string{"Evil"}},
		DNSNames: []string{"bank.example"},
	}, key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// newCSR returns a parsed CSR signed by key.
func newCSR(tb testing.TB, key crypto.Signer) *x509.CertificateRequest {
	tb.Helper()
	csr, err := ParseCSR(newCSRDER(tb, key))
	if err != nil {
		tb.Fatal(err)
	}
	return csr
}

// mustScopeCA returns the scope "default"'s issuing CA below a fresh
// installation root, created at testNow.
func mustScopeCA(tb testing.TB) (scope, root *Authority) {
	tb.Helper()
	root, _, _ = MustInstallationCA(tb)
	scope, err := NewScopeCA(root, "default", testNow)
	if err != nil {
		tb.Fatal(err)
	}
	return scope, root
}

// mustRootCA returns a self-signed root with a key of the given kind, valid
// from testNow for validity.
func mustRootCA(tb testing.TB, kind string, validity time.Duration) *Authority {
	tb.Helper()
	key := newKey(tb, kind)
	cert, err := newSelfSigned(pkix.Name{CommonName: "Test " + kind + " Root"}, key, testNow, validity, 1)
	if err != nil {
		tb.Fatal(err)
	}
	a, err := New(cert, key)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// makeCert issues a certificate from tmpl through crypto/x509, for tests
// that need certificates Gatehouse would never make.
func makeCert(tb testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) *x509.Certificate {
	tb.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber, _ = randomSerial()
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func certPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

func keyPEM(tb testing.TB, key crypto.Signer) []byte {
	tb.Helper()
	der, err := MarshalKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// wantCode fails the test unless err carries code.
func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := gatehouse.ErrorCode(err); got != code {
		tb.Fatalf("got error %v (code %q), want code %q", err, got, code)
	}
}

// chainPool splits a's chain for x509.Verify: roots and intermediates.
func chainPool(a *Authority) (roots, inters *x509.CertPool) {
	roots, inters = x509.NewCertPool(), x509.NewCertPool()
	all := append([]*x509.Certificate{a.Certificate()}, a.Chain()...)
	last := all[len(all)-1]
	roots.AddCert(last)
	for _, c := range all[:len(all)-1] {
		inters.AddCert(c)
	}
	return roots, inters
}
