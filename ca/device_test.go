package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	mathrand "math/rand/v2"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// deviceExpectation is what a device certificate must say.
type deviceExpectation struct {
	scope, deviceID     string
	notBefore, notAfter time.Time
	dnsNames            []string
	crlDPs, ocsp        []string
}

// checkDeviceCert parses der and checks every field of it against want and
// against what crypto/x509 makes of the same profile, byte for byte. It
// returns the parsed certificate.
func checkDeviceCert(t *testing.T, a *Authority, der []byte, csr *x509.CertificateRequest, want deviceExpectation) *x509.Certificate {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("x509.ParseCertificate: %v", err)
	}
	if err := cert.CheckSignatureFrom(a.Certificate()); err != nil {
		t.Fatalf("CheckSignatureFrom(CA): %v", err)
	}
	roots, inters := chainPool(a)
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inters, CurrentTime: want.notBefore.Add(time.Minute),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	_, isRSA := csr.PublicKey.(*rsa.PublicKey)
	wantKU := x509.KeyUsageDigitalSignature
	if isRSA {
		wantKU |= x509.KeyUsageKeyEncipherment
	}
	wantURI := "urn:gatehouse:" + want.scope + ":" + want.deviceID
	var uris []string
	for _, u := range cert.URIs {
		uris = append(uris, u.String())
	}
	skid := sha256.Sum256(mustSPKIBits(t, csr.RawSubjectPublicKeyInfo))
	checks := []struct {
		name      string
		got, want any
	}{
		{"Version", cert.Version, 3},
		{"Subject", cert.Subject.String(), "CN=" + want.deviceID},
		{"Subject attributes", len(cert.Subject.Names), 1},
		{"RawIssuer", string(cert.RawIssuer), string(a.Certificate().RawSubject)},
		{"URIs", fmt.Sprint(uris), fmt.Sprint([]string{wantURI})},
		{"DNSNames", fmt.Sprint(cert.DNSNames), fmt.Sprint(want.dnsNames)},
		{"EmailAddresses", len(cert.EmailAddresses), 0},
		{"IPAddresses", len(cert.IPAddresses), 0},
		{"KeyUsage", cert.KeyUsage, wantKU},
		{"ExtKeyUsage", fmt.Sprint(cert.ExtKeyUsage), fmt.Sprint([]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})},
		{"UnknownExtKeyUsage", len(cert.UnknownExtKeyUsage), 0},
		{"BasicConstraintsValid", cert.BasicConstraintsValid, true},
		{"IsCA", cert.IsCA, false},
		{"SubjectKeyId", string(cert.SubjectKeyId), string(skid[:20])},
		{"AuthorityKeyId", string(cert.AuthorityKeyId), string(a.Certificate().SubjectKeyId)},
		{"serial positive", cert.SerialNumber.Sign(), 1},
		{"serial <= 128 bits", cert.SerialNumber.BitLen() <= 128, true},
		{"NotBefore", cert.NotBefore.String(), want.notBefore.UTC().String()},
		{"NotAfter", cert.NotAfter.String(), want.notAfter.UTC().String()},
		{"RawSubjectPublicKeyInfo", string(cert.RawSubjectPublicKeyInfo), string(csr.RawSubjectPublicKeyInfo)},
		{"SignatureAlgorithm", cert.SignatureAlgorithm, wantSignatureAlgorithm(a.Signer().Public())},
		{"CRLDistributionPoints", fmt.Sprint(cert.CRLDistributionPoints), fmt.Sprint(want.crlDPs)},
		{"OCSPServer", fmt.Sprint(cert.OCSPServer), fmt.Sprint(want.ocsp)},
		{"IssuingCertificateURL", len(cert.IssuingCertificateURL), 0},
		{"PolicyIdentifiers", len(cert.PolicyIdentifiers), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	critical := map[string]bool{}
	for _, ext := range cert.Extensions {
		critical[ext.Id.String()] = ext.Critical
	}
	for oid, want := range map[string]bool{"2.5.29.19": true, "2.5.29.15": true, "2.5.29.37": false, "2.5.29.17": false, "2.5.29.14": false, "2.5.29.35": false} {
		got, ok := critical[oid]
		if !ok {
			t.Errorf("extension %s missing", oid)
		} else if got != want {
			t.Errorf("extension %s critical = %v, want %v", oid, got, want)
		}
	}
	// The common name is a UTF8String, as RFC 5280 asks of new
	// certificates, whatever its characters.
	var rdns []asn1.RawValue // SEQUENCE OF SET OF AttributeTypeAndValue
	var atv struct {
		OID   asn1.ObjectIdentifier
		Value asn1.RawValue
	}
	if rest, err := asn1.Unmarshal(cert.RawSubject, &rdns); err != nil || len(rest) > 0 || len(rdns) != 1 {
		t.Errorf("subject is not one RDN: %x", cert.RawSubject)
	} else if rest, err := asn1.Unmarshal(rdns[0].Bytes, &atv); err != nil || len(rest) > 0 ||
		!atv.OID.Equal(asn1.ObjectIdentifier{2, 5, 4, 3}) || atv.Value.Tag != asn1.TagUTF8String || string(atv.Value.Bytes) != want.deviceID {
		t.Errorf("subject is not one UTF8String CN: %x", cert.RawSubject)
	}
	if got, want := cert.RawTBSCertificate, stdlibTBS(t, a, cert, csr, want); !bytes.Equal(got, want) {
		t.Errorf("TBSCertificate differs from crypto/x509's for the same profile:\n got %x\nwant %x", got, want)
	}
	return cert
}

// stdlibTBS has crypto/x509 make the certificate checkDeviceCert expects,
// with the serial and subject encoding of got, and returns its
// TBSCertificate.
func stdlibTBS(t *testing.T, a *Authority, got *x509.Certificate, csr *x509.CertificateRequest, want deviceExpectation) []byte {
	t.Helper()
	uri, _ := url.Parse(DeviceURI(want.scope, want.deviceID))
	ku := x509.KeyUsageDigitalSignature
	if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	skid, err := subjectKeyID(csr.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          got.SerialNumber,
		RawSubject:            got.RawSubject,
		NotBefore:             want.notBefore,
		NotAfter:              want.notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		SubjectKeyId:          skid,
		URIs:                  []*url.URL{uri},
		DNSNames:              want.dnsNames,
		CRLDistributionPoints: want.crlDPs,
		OCSPServer:            want.ocsp,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Certificate(), csr.PublicKey, a.Signer())
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c.RawTBSCertificate
}

func wantSignatureAlgorithm(pub crypto.PublicKey) x509.SignatureAlgorithm {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize == 384 {
			return x509.ECDSAWithSHA384
		}
		return x509.ECDSAWithSHA256
	case *rsa.PublicKey:
		return x509.SHA256WithRSA
	}
	return x509.PureEd25519
}

func mustSPKIBits(t *testing.T, spki []byte) []byte {
	t.Helper()
	b, err := spkiPublicKey(spki)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIssueDeviceCertificate(t *testing.T) {
	a, _ := mustScopeCA(t)
	for _, kind := range acceptedKeyKinds {
		t.Run(kind, func(t *testing.T) {
			csr := newCSR(t, newKey(t, kind))
			der, err := a.IssueDeviceCertificate(csr, "default", "dev-1", 90*24*time.Hour, testNow)
			if err != nil {
				t.Fatal(err)
			}
			checkDeviceCert(t, a, der, csr, deviceExpectation{
				scope: "default", deviceID: "dev-1",
				notBefore: testNow.Add(-5 * time.Minute), notAfter: testNow.Add(90 * 24 * time.Hour),
			})
		})
	}
}

func TestIssueDeviceCertificateOptions(t *testing.T) {
	a, _ := mustScopeCA(t)
	csr := newCSR(t, newKey(t, "p256"))
	der, err := a.IssueDeviceCertificate(csr, "plant-7", "sensor_01:a", time.Hour, testNow,
		WithCRLDistributionPoint("http://gatehouse.example/crl/plant-7.crl"),
		WithOCSPServer("http://gatehouse.example/ocsp/plant-7"),
		WithDNSNames("sensor-01.plant-7.example", "sensor-01.local"),
		WithCRLDistributionPoint("https://mirror.example/plant-7.crl"),
	)
	if err != nil {
		t.Fatal(err)
	}
	checkDeviceCert(t, a, der, csr, deviceExpectation{
		scope: "plant-7", deviceID: "sensor_01:a",
		notBefore: testNow.Add(-5 * time.Minute), notAfter: testNow.Add(time.Hour),
		dnsNames: []string{"sensor-01.plant-7.example", "sensor-01.local"},
		crlDPs:   []string{"http://gatehouse.example/crl/plant-7.crl", "https://mirror.example/plant-7.crl"},
		ocsp:     []string{"http://gatehouse.example/ocsp/plant-7"},
	})
}

func TestIssueDeviceCertificateValidityClamped(t *testing.T) {
	root := mustRootCA(t, "p256", 30*24*time.Hour)
	csr := newCSR(t, newKey(t, "p256"))
	// Asked for a year from a CA with 30 days left: the certificate ends
	// with the CA.
	der, err := root.IssueDeviceCertificate(csr, "default", "dev-1", 365*24*time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	checkDeviceCert(t, root, der, csr, deviceExpectation{
		scope: "default", deviceID: "dev-1",
		// The root starts at testNow-1h, before the 5 minute backdating.
		notBefore: testNow.Add(-5 * time.Minute), notAfter: root.Certificate().NotAfter,
	})
	// Issued in the CA's first minute: NotBefore does not precede the CA's.
	early := root.Certificate().NotBefore.Add(time.Minute)
	der, err = root.IssueDeviceCertificate(csr, "default", "dev-1", time.Hour, early)
	if err != nil {
		t.Fatal(err)
	}
	checkDeviceCert(t, root, der, csr, deviceExpectation{
		scope: "default", deviceID: "dev-1",
		notBefore: root.Certificate().NotBefore, notAfter: early.Add(time.Hour),
	})
}

func TestIssueDeviceCertificateErrors(t *testing.T) {
	a, _ := mustScopeCA(t)
	csr := newCSR(t, newKey(t, "p256"))
	p521 := &x509.CertificateRequest{PublicKey: newKey(t, "p521").Public()}
	refuseRSA := func(p *Profile) error {
		if _, ok := p.PublicKey.(*rsa.PublicKey); ok {
			return gatehouse.Errorf(gatehouse.EUnsupportedKey, "this scope takes ECDSA keys only")
		}
		return nil
	}
	tests := []struct {
		name     string
		csr      *x509.CertificateRequest
		scope    string
		id       string
		validity time.Duration
		now      time.Time
		opts     []Option
		code     string
	}{
		{"nil CSR", nil, "default", "dev-1", time.Hour, testNow, nil, gatehouse.ECSRInvalid},
		{"P-521 key", p521, "default", "dev-1", time.Hour, testNow, nil, gatehouse.EUnsupportedKey},
		{"bad scope", csr, "Default", "dev-1", time.Hour, testNow, nil, gatehouse.EInvalidID},
		{"scope with colon", csr, "a:b", "dev-1", time.Hour, testNow, nil, gatehouse.EInvalidID},
		{"empty device", csr, "default", "", time.Hour, testNow, nil, gatehouse.EInvalidID},
		{"bad device", csr, "default", "Dev 1", time.Hour, testNow, nil, gatehouse.EInvalidID},
		{"zero validity", csr, "default", "dev-1", 0, testNow, nil, gatehouse.EInvalid},
		{"negative validity", csr, "default", "dev-1", -time.Hour, testNow, nil, gatehouse.EInvalid},
		{"CA expired", csr, "default", "dev-1", time.Hour, a.Certificate().NotAfter.Add(time.Second), nil, gatehouse.EInternal},
		{"bad CRL URL", csr, "default", "dev-1", time.Hour, testNow, []Option{WithCRLDistributionPoint("ldap://x/crl")}, gatehouse.EInvalid},
		{"non-ASCII OCSP URL", csr, "default", "dev-1", time.Hour, testNow, []Option{WithOCSPServer("http://bücher.example/ocsp")}, gatehouse.EInvalid},
		{"bad DNS name", csr, "default", "dev-1", time.Hour, testNow, []Option{WithDNSNames("-bad-.example")}, gatehouse.EInvalid},
		{"too many names", csr, "default", "dev-1", time.Hour, testNow, []Option{WithDNSNames(slices.Repeat([]string{"a.example"}, maxProfileNames+1)...)}, gatehouse.EInvalid},
		{"validator refuses", newCSR(t, newKey(t, "rsa2048")), "default", "dev-1", time.Hour, testNow, []Option{refuseRSA}, gatehouse.EUnsupportedKey},
		{"modifier empties validity", csr, "default", "dev-1", time.Hour, testNow, []Option{func(p *Profile) error { p.NotAfter = p.NotBefore; return nil }}, gatehouse.EInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := a.IssueDeviceCertificate(tt.csr, tt.scope, tt.id, tt.validity, tt.now, tt.opts...)
			if der != nil {
				t.Error("got a certificate")
			}
			wantCode(t, err, tt.code)
		})
	}
}

// A modifier may rename the device; the certificate follows the profile.
func TestIssueDeviceCertificateModifier(t *testing.T) {
	a, _ := mustScopeCA(t)
	csr := newCSR(t, newKey(t, "ed25519"))
	rename := func(p *Profile) error { p.DeviceID = "prefix-" + p.DeviceID; return nil }
	der, err := a.IssueDeviceCertificate(csr, "default", "dev-1", time.Hour, testNow, rename)
	if err != nil {
		t.Fatal(err)
	}
	checkDeviceCert(t, a, der, csr, deviceExpectation{
		scope: "default", deviceID: "prefix-dev-1",
		notBefore: testNow.Add(-5 * time.Minute), notAfter: testNow.Add(time.Hour),
	})
}

// Over many random CSRs, of every accepted key type, from CAs of every
// accepted key type, with random options, validities (some past 2050, where
// times become GeneralizedTime) and device IDs, every certificate is what
// crypto/x509 would make, byte for byte, and verifies.
func TestIssueDeviceCertificateProperty(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mathrand.New(mathrand.NewPCG(seed, seed>>1))
	scopeCA, _ := mustScopeCA(t)
	cas := []*Authority{scopeCA}
	for _, kind := range acceptedKeyKinds {
		cas = append(cas, mustRootCA(t, kind, 40*365*24*time.Hour))
	}
	n := 300
	if testing.Short() {
		n = 50
	}
	const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789-._:"
	for i := range n {
		a := cas[rng.IntN(len(cas))]
		kind := acceptedKeyKinds[rng.IntN(len(acceptedKeyKinds))]
		csr := newCSR(t, newKey(t, kind))
		id := make([]byte, 1+rng.IntN(gatehouse.MaxDeviceIDLen))
		for j := range id {
			id[j] = idAlphabet[rng.IntN(len(idAlphabet))]
		}
		scope := fmt.Sprintf("s%d", rng.IntN(1000))
		validity := time.Duration(1+rng.Int64N(int64(35*365*24*time.Hour))) + time.Duration(rng.IntN(1000))*time.Millisecond
		now := testNow.Add(time.Duration(rng.Int64N(int64(24 * time.Hour))))
		want := deviceExpectation{scope: scope, deviceID: string(id), notBefore: now.Add(-5 * time.Minute).Truncate(time.Second)}
		want.notAfter = now.Add(validity).Truncate(time.Second)
		if ca := a.Certificate().NotAfter; want.notAfter.After(ca) {
			want.notAfter = ca
		}
		if ca := a.Certificate().NotBefore; want.notBefore.Before(ca) {
			want.notBefore = ca
		}
		var opts []Option
		if rng.IntN(2) == 0 {
			u := fmt.Sprintf("http://crl%d.example/%s.crl", i, scope)
			opts, want.crlDPs = append(opts, WithCRLDistributionPoint(u)), []string{u}
		}
		if rng.IntN(2) == 0 {
			u := fmt.Sprintf("https://ocsp%d.example/", i)
			opts, want.ocsp = append(opts, WithOCSPServer(u)), []string{u}
		}
		if rng.IntN(3) == 0 {
			d := fmt.Sprintf("d%d.example", i)
			opts, want.dnsNames = append(opts, WithDNSNames(d)), []string{d}
		}
		der, err := a.IssueDeviceCertificate(csr, scope, string(id), validity, now, opts...)
		if err != nil {
			t.Fatalf("#%d (%s key, CA %s): %v", i, kind, a.Certificate().Subject.CommonName, err)
		}
		cert := checkDeviceCert(t, a, der, csr, want)
		gotScope, gotID, err := IdentityFromCertificate(cert)
		if err != nil || gotScope != scope || gotID != string(id) {
			t.Errorf("IdentityFromCertificate = %q, %q, %v; want %q, %q", gotScope, gotID, err, scope, id)
		}
		if t.Failed() {
			t.Fatalf("#%d failed (%s key, CA %s, validity %s)", i, kind, a.Certificate().Subject.CommonName, validity)
		}
	}
}

// Serials are random: no two certificates share one.
func TestIssueDeviceCertificateSerialsDiffer(t *testing.T) {
	a, _ := mustScopeCA(t)
	csr := newCSR(t, newKey(t, "p256"))
	seen := map[string]bool{}
	for range 200 {
		der, err := a.IssueDeviceCertificate(csr, "default", "dev-1", time.Hour, testNow)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		s := c.SerialNumber.String()
		if seen[s] {
			t.Fatalf("serial %s issued twice", s)
		}
		seen[s] = true
	}
}

func TestIssueDeviceCertificateConcurrent(t *testing.T) {
	a, _ := mustScopeCA(t)
	csr := newCSR(t, newKey(t, "p256"))
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var err error
			for range 20 {
				var der []byte
				if der, err = a.IssueDeviceCertificate(csr, "default", "dev-1", time.Hour, testNow); err != nil {
					break
				}
				var c *x509.Certificate
				if c, err = x509.ParseCertificate(der); err != nil {
					break
				}
				if err = c.CheckSignatureFrom(a.Certificate()); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// benchSetup returns what the issuance benchmarks share: a P-256 scope CA
// and a P-256 device's CSR in DER.
func benchSetup(b *testing.B) (*Authority, []byte) {
	b.Helper()
	a, _ := mustScopeCA(b)
	return a, newCSRDER(b, newKey(b, "p256"))
}

// BenchmarkIssueFromCSR is what a device enrolment costs the CA: parse the
// CSR, verify its signature, issue the certificate.
func BenchmarkIssueFromCSR(b *testing.B) {
	a, csrDER := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		csr, err := ParseCSR(csrDER)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.IssueDeviceCertificate(csr, "default", "dev-1", 90*24*time.Hour, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCryptoFloor is the least issuance can cost: verify the CSR's
// signature, and make one signature with the CA key.
func BenchmarkCryptoFloor(b *testing.B) {
	a, csrDER := benchSetup(b)
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		b.Fatal(err)
	}
	key := a.Signer().(*ecdsa.PrivateKey)
	digest := sha256.Sum256(csrDER)
	b.ReportAllocs()
	for b.Loop() {
		if err := csr.CheckSignature(); err != nil {
			b.Fatal(err)
		}
		if _, err := ecdsa.SignASN1(rand.Reader, key, digest[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateCertificateStdlib issues the same certificate through
// x509.CreateCertificate, for comparison: it verifies its own signature.
func BenchmarkCreateCertificateStdlib(b *testing.B) {
	a, csrDER := benchSetup(b)
	uri, _ := url.Parse(DeviceURI("default", "dev-1"))
	b.ReportAllocs()
	for b.Loop() {
		csr, err := ParseCSR(csrDER)
		if err != nil {
			b.Fatal(err)
		}
		serial, _ := randomSerial()
		skid, _ := subjectKeyID(csr.PublicKey)
		tmpl := &x509.Certificate{
			SerialNumber:          serial,
			NotBefore:             testNow.Add(-5 * time.Minute),
			NotAfter:              testNow.Add(90 * 24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			BasicConstraintsValid: true,
			SubjectKeyId:          skid,
			URIs:                  []*url.URL{uri},
		}
		tmpl.Subject.CommonName = "dev-1"
		if _, err := x509.CreateCertificate(rand.Reader, tmpl, a.Certificate(), csr.PublicKey, a.Signer()); err != nil {
			b.Fatal(err)
		}
	}
}
