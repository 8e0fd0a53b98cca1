package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

func TestNewScopeCA(t *testing.T) {
	a, root := mustScopeCA(t)
	c := a.Certificate()
	pub, _ := c.PublicKey.(*ecdsa.PublicKey)
	checks := []struct {
		name      string
		got, want any
	}{
		{"Subject", c.Subject.String(), "CN=Gatehouse default Issuing CA,O=Gatehouse"},
		{"Issuer", c.Issuer.String(), root.Certificate().Subject.String()},
		{"IsCA", c.IsCA, true},
		{"BasicConstraintsValid", c.BasicConstraintsValid, true},
		{"MaxPathLen", c.MaxPathLen, 0},
		{"MaxPathLenZero", c.MaxPathLenZero, true},
		{"KeyUsage", c.KeyUsage, x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature},
		{"NotAfter", c.NotAfter, testNow.Add(5 * 365 * 24 * time.Hour)},
		{"NotBefore before now", c.NotBefore.Before(testNow), true},
		{"P-256", pub != nil && pub.Curve == elliptic.P256(), true},
		{"SignatureAlgorithm", c.SignatureAlgorithm, x509.ECDSAWithSHA256},
		{"SubjectKeyId length", len(c.SubjectKeyId), 20},
		{"AuthorityKeyId", string(c.AuthorityKeyId), string(root.Certificate().SubjectKeyId)},
		{"serial positive", c.SerialNumber.Sign(), 1},
		{"serial <= 128 bits", c.SerialNumber.BitLen() <= 128, true},
		{"chain length", len(a.Chain()), 1},
		{"chain is the root", a.Chain()[0] == root.Certificate(), true},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	if err := c.CheckSignatureFrom(root.Certificate()); err != nil {
		t.Errorf("not signed by the root: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root.Certificate())
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("does not verify against the root: %v", err)
	}

	// ChainPEM: the scope CA, then the root.
	var got [][]byte
	rest := a.ChainPEM()
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		got = append(got, b.Bytes)
	}
	if len(got) != 2 || string(got[0]) != string(c.Raw) || string(got[1]) != string(root.Certificate().Raw) {
		t.Errorf("ChainPEM holds %d certificates, want the scope CA then the root", len(got))
	}
	if string(root.ChainPEM()) != string(root.CertPEM()) {
		t.Error("a root's ChainPEM is not just its certificate")
	}
}

// A scope CA never outlives its root.
func TestNewScopeCACappedByRoot(t *testing.T) {
	root := mustRootCA(t, "p384", 365*24*time.Hour)
	a, err := NewScopeCA(root, "plant-7", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Certificate().NotAfter, root.Certificate().NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %v, want the root's %v", got, want)
	}
	if got := a.Certificate().SignatureAlgorithm; got != x509.ECDSAWithSHA384 {
		t.Errorf("signed with %v by a P-384 root", got)
	}
}

func TestNewScopeCAErrors(t *testing.T) {
	root, _, _ := MustInstallationCA(t)
	_, err := NewScopeCA(root, "Bad Scope", testNow)
	wantCode(t, err, gatehouse.EInvalidID)
	if _, err := NewScopeCA(root, "default", root.Certificate().NotAfter.Add(time.Hour)); err == nil {
		t.Error("an expired root issued a scope CA")
	}
}

// The key survives MarshalKey and ParseKey, and an Authority rebuilt from
// what the store keeps (certificate, chain, key) works as the original.
func TestMarshalParseKey(t *testing.T) {
	a, _ := mustScopeCA(t)
	for _, kind := range acceptedKeyKinds {
		key := newKey(t, kind)
		der, err := MarshalKey(key)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		back, err := ParseKey(der)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if !back.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
			t.Errorf("%s: the parsed key differs", kind)
		}
	}
	der, err := MarshalKey(a.Signer())
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseKey(der)
	if err != nil {
		t.Fatal(err)
	}
	rebuilt, err := New(a.Certificate(), key, a.Chain()...)
	if err != nil {
		t.Fatal(err)
	}
	if string(rebuilt.ChainPEM()) != string(a.ChainPEM()) {
		t.Error("the rebuilt CA's chain differs")
	}
	csr := newCSR(t, newKey(t, "p256"))
	cert, err := rebuilt.IssueDeviceCertificate(csr, "default", "dev-1", time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	checkDeviceCert(t, rebuilt, cert, csr, deviceExpectation{scope: "default", deviceID: "dev-1",
		notBefore: testNow.Add(-5 * time.Minute), notAfter: testNow.Add(time.Hour)})

	if _, err := ParseKey([]byte("not a key")); err == nil {
		t.Error("ParseKey accepted garbage")
	}
	if _, err := MarshalKey(opaqueSigner{key}); err == nil {
		t.Error("MarshalKey exported an opaque signer")
	}
}

// opaqueSigner hides the key type, as an HSM's signer would.
type opaqueSigner struct{ crypto.Signer }
