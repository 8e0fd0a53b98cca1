package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

var certNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// testCert is a certificate and its key.
type testCert struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// certOpts shapes a test certificate; the zero value is a leaf valid
// around certNow with no extended key usage.
type certOpts struct {
	ca        bool
	eku       []x509.ExtKeyUsage
	notBefore time.Time
	notAfter  time.Time
	keyUsage  x509.KeyUsage
}

var serial int64

// issue makes a certificate named cn, signed by parent (self-signed if nil).
func issue(tb testing.TB, cn string, parent *testCert, o certOpts) *testCert {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    certNow.Add(-time.Hour),
		NotAfter:     certNow.Add(time.Hour),
		ExtKeyUsage:  o.eku,
		KeyUsage:     o.keyUsage,
	}
	if !o.notBefore.IsZero() {
		tmpl.NotBefore = o.notBefore
	}
	if !o.notAfter.IsZero() {
		tmpl.NotAfter = o.notAfter
	}
	if o.ca {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		if tmpl.KeyUsage == 0 {
			tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		}
	} else {
		tmpl.BasicConstraintsValid = true
		if tmpl.KeyUsage == 0 {
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		}
	}
	signer, parentCert := crypto.Signer(key), tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), signer)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &testCert{cert: cert, key: key}
}

func TestVerifyChain(t *testing.T) {
	root := issue(t, "Root CA", nil, certOpts{ca: true})
	inter := issue(t, "Intermediate CA", root, certOpts{ca: true})
	leaf := issue(t, "dev-1", inter, certOpts{eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	direct := issue(t, "dev-2", root, certOpts{})
	anyEKU := issue(t, "dev-3", inter, certOpts{eku: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	serverOnly := issue(t, "dev-4", inter, certOpts{eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	expired := issue(t, "dev-5", inter, certOpts{notAfter: certNow.Add(-time.Minute)})
	future := issue(t, "dev-6", inter, certOpts{notBefore: certNow.Add(time.Minute)})
	serverInter := issue(t, "Server-only CA", root, certOpts{ca: true, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	underServerInter := issue(t, "dev-7", serverInter, certOpts{})
	otherRoot := issue(t, "Other CA", nil, certOpts{ca: true})
	notCA := issue(t, "not-a-ca", root, certOpts{})
	underNotCA := issue(t, "dev-8", notCA, certOpts{})

	tests := []struct {
		name          string
		leaf          *testCert
		intermediates []*testCert
		anchor        *testCert
		want          int
		reason        string
	}{
		{"root anchor", leaf, []*testCert{inter}, root, 3, ""},
		{"intermediate anchor", leaf, []*testCert{inter}, inter, 2, ""},
		{"intermediate anchor, nothing presented", leaf, nil, inter, 2, ""},
		{"chain with root presented", leaf, []*testCert{inter, root}, root, 3, ""},
		{"root presented, intermediate anchor", leaf, []*testCert{inter, root}, inter, 2, ""},
		{"issued by the root", direct, nil, root, 2, ""},
		{"eku any", anyEKU, []*testCert{inter}, root, 3, ""},
		{"intermediate missing", leaf, nil, root, 0, ReasonUntrusted},
		{"other root", leaf, []*testCert{inter}, otherRoot, 0, ReasonUntrusted},
		{"presented root is not trusted", leaf, []*testCert{inter, root}, otherRoot, 0, ReasonUntrusted},
		{"server auth only", serverOnly, []*testCert{inter}, root, 0, ReasonUntrusted},
		{"intermediate forbids client auth", underServerInter, []*testCert{serverInter}, root, 0, ReasonUntrusted},
		{"issuer is not a CA", underNotCA, []*testCert{notCA}, root, 0, ReasonUntrusted},
		{"expired", expired, []*testCert{inter}, root, 0, ReasonExpired},
		{"not yet valid", future, []*testCert{inter}, root, 0, ReasonNotYetValid},
		{"leaf is the anchor", inter, nil, inter, 0, ReasonUntrusted},
		{"too many intermediates", leaf, make([]*testCert, MaxIntermediates+1), inter, 0, ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var inters []*x509.Certificate
			for _, c := range tt.intermediates {
				if c == nil {
					inters = append(inters, inter.cert)
					continue
				}
				inters = append(inters, c.cert)
			}
			got, err := VerifyChain(tt.leaf.cert, inters, tt.anchor.cert, certNow)
			if got != tt.want {
				t.Errorf("depth: got %d, want %d", got, tt.want)
			}
			if tt.reason == "" {
				if err != nil {
					t.Errorf("VerifyChain: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("VerifyChain accepted it")
			}
			checkDeviceFacing(t, err, tt.reason)
		})
	}

	t.Run("nil", func(t *testing.T) {
		_, err := VerifyChain(nil, nil, root.cert, certNow)
		checkDeviceFacing(t, err, ReasonMalformed)
		_, err = VerifyChain(leaf.cert, []*x509.Certificate{nil, inter.cert}, nil, certNow)
		checkDeviceFacing(t, err, ReasonMalformed)
		if _, err := VerifyChain(leaf.cert, []*x509.Certificate{nil, inter.cert}, root.cert, certNow); err != nil {
			t.Errorf("nil intermediate: %v", err)
		}
	})
}

func TestThumbprint(t *testing.T) {
	c := issue(t, "dev-1", nil, certOpts{})
	sum := sha256.Sum256(c.cert.Raw)
	want := hex.EncodeToString(sum[:])
	if got := Thumbprint(c.cert); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	colons := strings.ToUpper(want[:2])
	for i := 2; i < len(want); i += 2 {
		colons += ":" + strings.ToUpper(want[i:i+2])
	}
	for _, in := range []string{want, strings.ToUpper(want), colons, " " + want + " "} {
		got, err := NormalizeThumbprint(in)
		if err != nil || got != want {
			t.Errorf("NormalizeThumbprint(%q): got %q, %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", want[:62], want + "00", "zz" + want[2:]} {
		if _, err := NormalizeThumbprint(in); gatehouse.ErrorCode(err) != gatehouse.EInvalid {
			t.Errorf("NormalizeThumbprint(%q): got %v, want an %s error", in, err, gatehouse.EInvalid)
		}
	}
}

func TestRegistrationIDFromCertificate(t *testing.T) {
	tests := []struct {
		cn     string
		reason string
	}{
		{"dev-1", ""},
		{"sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6", ""},
		{"a.b_c:d", ""},
		{"", ReasonInvalidID},
		{"Dev-1", ReasonInvalidID},
		{"dev 1", ReasonInvalidID},
		{"dev/1", ReasonInvalidID},
		{strings.Repeat("a", gatehouse.MaxDeviceIDLen+1), ReasonInvalidID},
	}
	for _, tt := range tests {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: tt.cn}}
		got, err := RegistrationIDFromCertificate(c)
		if tt.reason == "" {
			if err != nil || got != tt.cn {
				t.Errorf("CN %q: got %q, %v", tt.cn, got, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("CN %q: accepted", tt.cn)
			continue
		}
		checkDeviceFacing(t, err, tt.reason)
	}
	_, err := RegistrationIDFromCertificate(nil)
	checkDeviceFacing(t, err, ReasonMalformed)
}

func TestNewVerificationCode(t *testing.T) {
	a, b := NewVerificationCode(), NewVerificationCode()
	if len(a) != 32 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("got %q, want 32 lowercase hex digits", a)
	}
	if a == b {
		t.Errorf("two codes are both %q", a)
	}
}

func TestVerifyPossession(t *testing.T) {
	ca := issue(t, "Group CA", nil, certOpts{ca: true})
	other := issue(t, "Other CA", nil, certOpts{ca: true})
	notCA := issue(t, "Not a CA", nil, certOpts{})
	noCertSign := issue(t, "CRL-only CA", nil, certOpts{ca: true, keyUsage: x509.KeyUsageCRLSign})
	expiredCA := issue(t, "Old CA", nil, certOpts{ca: true, notAfter: certNow.Add(-time.Minute)})
	code := NewVerificationCode()

	tests := []struct {
		name   string
		ca     *testCert
		proof  *testCert
		code   string
		reason string
	}{
		{"ok", ca, issue(t, code, ca, certOpts{}), code, ""},
		{"code in upper case", ca, issue(t, strings.ToUpper(code), ca, certOpts{}), code, ""},
		{"wrong code", ca, issue(t, NewVerificationCode(), ca, certOpts{}), code, ReasonWrongCode},
		{"no code", ca, issue(t, "", ca, certOpts{}), "", ReasonMalformed},
		{"signed by another CA", ca, issue(t, code, other, certOpts{}), code, ReasonBadSignature},
		{"self-signed proof", ca, issue(t, code, nil, certOpts{}), code, ReasonBadSignature},
		{"not a CA", notCA, issue(t, code, notCA, certOpts{}), code, ReasonBadSignature},
		{"CA may not sign certificates", noCertSign, issue(t, code, noCertSign, certOpts{}), code, ReasonBadSignature},
		{"proof expired", ca, issue(t, code, ca, certOpts{notAfter: certNow.Add(-time.Second)}), code, ReasonExpired},
		{"proof not yet valid", ca, issue(t, code, ca, certOpts{notBefore: certNow.Add(time.Second)}), code, ReasonNotYetValid},
		{"CA expired", expiredCA, issue(t, code, expiredCA, certOpts{}), code, ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyPossession(tt.ca.cert, tt.proof.cert, tt.code, certNow)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("VerifyPossession: %v", err)
				}
				return
			}
			if got := Reason(err); got != tt.reason {
				t.Errorf("Reason: got %q, want %q (err %v)", got, tt.reason, err)
			}
			if got := gatehouse.ErrorCode(err); got != gatehouse.EAttestationFailed {
				t.Errorf("ErrorCode: got %q, want %q", got, gatehouse.EAttestationFailed)
			}
			// Only an operator sees these: the message must help.
			if msg := gatehouse.ErrorMessage(err); msg == deviceMessage || msg == "" {
				t.Errorf("ErrorMessage: got %q, want an explanation", msg)
			}
		})
	}
	if err := VerifyPossession(nil, ca.cert, code, certNow); Reason(err) != ReasonMalformed {
		t.Errorf("nil CA: got %v", err)
	}
}
