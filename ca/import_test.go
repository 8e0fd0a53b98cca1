package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// operatorPKI is an operator's own hierarchy: an offline root, an
// intermediate, and the CA to import below it.
type operatorPKI struct {
	root, inter, ca          *x509.Certificate
	rootKey, interKey, caKey crypto.Signer
}

func caTemplate(cn string, maxPathLen int) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Operator"}},
		NotBefore:             testNow.Add(-24 * time.Hour),
		NotAfter:              testNow.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        maxPathLen == 0,
	}
}

func newOperatorPKI(t testing.TB, caKind string) operatorPKI {
	t.Helper()
	var p operatorPKI
	p.rootKey, p.interKey, p.caKey = newKey(t, "p384"), newKey(t, "p256"), newKey(t, caKind)
	p.root = makeCert(t, caTemplate("Operator Root", 2), nil, p.rootKey.Public(), p.rootKey)
	p.inter = makeCert(t, caTemplate("Operator Intermediate", 1), p.root, p.interKey.Public(), p.rootKey)
	p.ca = makeCert(t, caTemplate("Operator Devices CA", 0), p.inter, p.caKey.Public(), p.interKey)
	return p
}

func TestParseImportedCA(t *testing.T) {
	for _, kind := range acceptedKeyKinds {
		t.Run(kind, func(t *testing.T) {
			p := newOperatorPKI(t, kind)
			a, err := ParseImportedCA(certPEM(p.ca), keyPEM(t, p.caKey), certPEM(p.inter, p.root), testNow)
			if err != nil {
				t.Fatal(err)
			}
			if want := certPEM(p.ca, p.inter, p.root); !bytes.Equal(a.ChainPEM(), want) {
				t.Error("ChainPEM is not the CA, the intermediate and the root")
			}
			csr := newCSR(t, newKey(t, "p256"))
			der, err := a.IssueDeviceCertificate(csr, "plant-7", "dev-1", time.Hour, testNow)
			if err != nil {
				t.Fatal(err)
			}
			checkDeviceCert(t, a, der, csr, deviceExpectation{scope: "plant-7", deviceID: "dev-1",
				notBefore: testNow.Add(-5 * time.Minute), notAfter: testNow.Add(time.Hour)})
		})
	}
}

// The key formats openssl writes: PKCS #8, PKCS #1 for RSA, SEC1 for EC
// (after an EC PARAMETERS block, as openssl ecparam -genkey writes it).
func TestParseImportedCAKeyFormats(t *testing.T) {
	ecPKI, rsaPKI := newOperatorPKI(t, "p256"), newOperatorPKI(t, "rsa2048")
	sec1, err := x509.MarshalECPrivateKey(ecPKI.caKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	ecParams := "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
	tests := []struct {
		name string
		p    operatorPKI
		key  []byte
	}{
		{"PKCS #8", ecPKI, keyPEM(t, ecPKI.caKey)},
		{"SEC1", ecPKI, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})},
		{"SEC1 after EC PARAMETERS", ecPKI, append([]byte(ecParams), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...)},
		{"PKCS #1", rsaPKI, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaPKI.caKey.(*rsa.PrivateKey))})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The chain without the root: the root stays offline.
			if _, err := ParseImportedCA(certPEM(tt.p.ca), tt.key, certPEM(tt.p.inter), testNow); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseImportedCAErrors(t *testing.T) {
	p := newOperatorPKI(t, "p256")
	key := keyPEM(t, p.caKey)
	chain := certPEM(p.inter, p.root)
	otherKey := newKey(t, "p256")

	noCertSign := caTemplate("No CertSign", 0)
	noCertSign.KeyUsage = x509.KeyUsageCRLSign
	noCRLSign := caTemplate("No CRLSign", 0)
	noCRLSign.KeyUsage = x509.KeyUsageCertSign
	notCA := caTemplate("Not a CA", 0)
	notCA.IsCA, notCA.KeyUsage, notCA.MaxPathLen, notCA.MaxPathLenZero = false, x509.KeyUsageDigitalSignature, -1, false
	expired := caTemplate("Expired", 0)
	expired.NotAfter = testNow.Add(-time.Hour)
	future := caTemplate("Future", 0)
	future.NotBefore = testNow.Add(time.Hour)
	p521Key := newKey(t, "p521")
	rsa1024Key := newKey(t, "rsa1024")
	issue := func(tmpl *x509.Certificate, k crypto.Signer) []byte {
		return certPEM(makeCert(t, tmpl, p.inter, k.Public(), p.interKey))
	}
	// A root with path length 0 above an intermediate: every signature is
	// fine, but the path is not.
	pl0Root := makeCert(t, caTemplate("Path Length 0 Root", 0), nil, p.rootKey.Public(), p.rootKey)
	interBelowPL0 := makeCert(t, caTemplate("Operator Intermediate", 1), pl0Root, p.interKey.Public(), p.rootKey)
	otherRootKey := newKey(t, "p256")
	otherRoot := makeCert(t, caTemplate("Other Root", 1), nil, otherRootKey.Public(), otherRootKey)
	leafKey := newKey(t, "p256")
	leaf := makeCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "leaf"}, NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour)}, p.inter, leafKey.Public(), p.interKey)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: []byte{1, 2, 3}})

	tests := []struct {
		name             string
		cert, key, chain []byte
		code             string
		contains         string
	}{
		{"empty cert", nil, key, chain, gatehouse.EInvalidPEM, "empty"},
		{"cert not PEM", []byte("hello"), key, chain, gatehouse.EInvalidPEM, "not PEM"},
		{"cert as key block", key, key, chain, gatehouse.EInvalidPEM, `"PRIVATE KEY"`},
		{"two certs", certPEM(p.ca, p.inter), key, nil, gatehouse.EInvalidPEM, "holds 2"},
		{"cert garbage in PEM", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}), key, chain, gatehouse.EInvalidCA, "does not parse"},
		{"cert too large", make([]byte, 70000), key, chain, gatehouse.ETooLarge, "limit"},
		{"not a CA", issue(notCA, p.caKey), key, chain, gatehouse.EInvalidCA, "not a CA"},
		{"leaf", certPEM(leaf), keyPEM(t, leafKey), chain, gatehouse.EInvalidCA, "not a CA"},
		{"no certSign", issue(noCertSign, p.caKey), key, chain, gatehouse.EInvalidCA, "keyCertSign"},
		{"no cRLSign", issue(noCRLSign, p.caKey), key, chain, gatehouse.EInvalidCA, "cRLSign"},
		{"expired", issue(expired, p.caKey), key, chain, gatehouse.EInvalidCA, "expired"},
		{"not yet valid", issue(future, p.caKey), key, chain, gatehouse.EInvalidCA, "not valid until"},
		{"P-521 CA", issue(caTemplate("P-521", 0), p521Key), keyPEM(t, p521Key), chain, gatehouse.EUnsupportedKey, "P-521"},
		{"RSA 1024 CA", issue(caTemplate("RSA 1024", 0), rsa1024Key), keyPEM(t, rsa1024Key), chain, gatehouse.EUnsupportedKey, "1024"},
		{"key mismatch", certPEM(p.ca), keyPEM(t, otherKey), chain, gatehouse.EInvalidCA, "does not belong"},
		{"no key", certPEM(p.ca), nil, chain, gatehouse.EInvalidPEM, "no private key"},
		{"key not PEM", certPEM(p.ca), []byte("secret"), chain, gatehouse.EInvalidPEM, "not PEM"},
		{"key is a cert", certPEM(p.ca), certPEM(p.ca), chain, gatehouse.EInvalidPEM, `"CERTIFICATE"`},
		{"key garbage", certPEM(p.ca), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("secret material")}), chain, gatehouse.EInvalidPEM, "does not parse"},
		{"encrypted PKCS #8", certPEM(p.ca), pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), chain, gatehouse.EInvalidPEM, "encrypted"},
		{"encrypted legacy", certPEM(p.ca), encrypted, chain, gatehouse.EInvalidPEM, "encrypted"},
		{"two keys", certPEM(p.ca), append(bytes.Clone(key), keyPEM(t, otherKey)...), chain, gatehouse.EInvalidPEM, "more than one"},
		{"chain reversed", certPEM(p.ca), key, certPEM(p.root, p.inter), gatehouse.EInvalidCA, "did not sign"},
		{"chain of another root", certPEM(p.ca), key, certPEM(otherRoot), gatehouse.EInvalidCA, "did not sign"},
		{"chain with a leaf", certPEM(p.ca), key, certPEM(leaf), gatehouse.EInvalidCA, "not a CA"},
		{"root in the middle", certPEM(p.ca), key, certPEM(p.inter, p.root, p.root), gatehouse.EInvalidCA, "not last"},
		{"path length", certPEM(p.ca), key, certPEM(interBelowPL0, pl0Root), gatehouse.EInvalidCA, "does not verify"},
		{"chain not PEM", certPEM(p.ca), key, []byte("junk"), gatehouse.EInvalidPEM, "not PEM"},
		{"chain too long", certPEM(p.ca), key, bytes.Repeat(certPEM(p.inter), maxImportChain+1), gatehouse.EInvalidCA, "more than"},
		{"self-signed with a chain", certPEM(p.root), keyPEM(t, p.rootKey), certPEM(p.root), gatehouse.EInvalidCA, "leave the chain empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseImportedCA(tt.cert, tt.key, tt.chain, testNow)
			if a != nil {
				t.Error("got an Authority")
			}
			wantCode(t, err, tt.code)
			msg := gatehouse.ErrorMessage(err)
			if !strings.Contains(msg, tt.contains) {
				t.Errorf("message %q does not contain %q", msg, tt.contains)
			}
			assertNoKeyMaterial(t, msg, tt.key)
		})
	}
}

// assertNoKeyMaterial fails if msg quotes any run of the key's PEM body.
func assertNoKeyMaterial(t *testing.T, msg string, keyPEM []byte) {
	t.Helper()
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return
	}
	body := string(pem.EncodeToMemory(&pem.Block{Type: "X", Bytes: block.Bytes}))
	for line := range strings.SplitSeq(body, "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(msg, line[:16]) {
			t.Errorf("message %q quotes the key", msg)
		}
	}
	if len(block.Bytes) >= 8 && strings.Contains(msg, string(block.Bytes[:8])) {
		t.Errorf("message %q quotes raw key bytes", msg)
	}
}

func FuzzParseImportedCA(f *testing.F) {
	p := newOperatorPKI(f, "p256")
	key := keyPEM(f, p.caKey)
	f.Add(certPEM(p.ca), key, certPEM(p.inter, p.root))
	f.Add(certPEM(p.ca), key, []byte{})
	f.Add(certPEM(p.root), keyPEM(f, p.rootKey), []byte{})
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n"), []byte("-----BEGIN PRIVATE KEY-----\n"), []byte("-----BEGIN CERTIFICATE-----\n"))
	f.Add([]byte{}, []byte{}, []byte{})
	allowed := map[string]bool{
		gatehouse.ETooLarge: true, gatehouse.EInvalidPEM: true,
		gatehouse.EInvalidCA: true, gatehouse.EUnsupportedKey: true,
	}
	f.Fuzz(func(t *testing.T, cert, key, chain []byte) {
		a, err := ParseImportedCA(cert, key, chain, testNow)
		if err != nil {
			if a != nil {
				t.Fatal("an Authority and an error")
			}
			if code := gatehouse.ErrorCode(err); !allowed[code] {
				t.Fatalf("error %v has code %q", err, code)
			}
			return
		}
		if !a.Certificate().IsCA || a.Certificate().KeyUsage&x509.KeyUsageCertSign == 0 {
			t.Fatal("imported a certificate that is not a CA")
		}
	})
}
