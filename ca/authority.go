package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// An Authority issues certificates: a CA certificate and the signer holding
// its private key. It is safe for concurrent use if its signer is.
type Authority struct {
	cert    *x509.Certificate
	certPEM []byte
	// chain holds the certificates above cert, nearest first, up to and
	// including the root when it is known. It is empty for a root.
	chain  []*x509.Certificate
	signer crypto.Signer
	// alg is how this CA signs: the DER AlgorithmIdentifier that goes into
	// what it signs, and the hash to apply first (0 for Ed25519).
	alg signatureAlgorithm
}

// New returns an Authority for cert, signing with signer, whose public key
// must be cert's. chain lists the certificates above cert, nearest first;
// leave it empty for a root. It may end with the self-signed root, which
// ChainPEM then includes; TLS chains leave it out, since a peer must not rely
// on the root the other side sends. The key must be one CheckPublicKey
// accepts.
func New(cert *x509.Certificate, signer crypto.Signer, chain ...*x509.Certificate) (*Authority, error) {
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, errors.New("new authority: certificate is not a CA certificate")
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("new authority: certificate lacks the certSign key usage")
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("new authority: the signer's public key does not match the certificate")
	}
	alg, err := signatureAlgorithmFor(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("new authority: %w", err)
	}
	return &Authority{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		chain:   slices.Clone(chain),
		signer:  signer,
		alg:     alg,
	}, nil
}

// Certificate returns the CA certificate. The caller must not modify it.
func (a *Authority) Certificate() *x509.Certificate { return a.cert }

// CertPEM returns the CA certificate in PEM, for DATA/ca.pem: what clients
// install to trust this CA.
func (a *Authority) CertPEM() []byte { return append([]byte(nil), a.certPEM...) }

// Signer returns the CA's signer.
func (a *Authority) Signer() crypto.Signer { return a.signer }

// Chain returns the certificates above the CA certificate, nearest first, up
// to and including the root when it is known; it is empty for a root. The
// caller must not modify the certificates.
func (a *Authority) Chain() []*x509.Certificate { return slices.Clone(a.chain) }

// ChainPEM returns the CA certificate followed by its chain up to the root,
// in PEM: what a verifier needs to check a certificate this CA issued (for
// example openssl verify -CAfile).
func (a *Authority) ChainPEM() []byte {
	out := a.CertPEM()
	for _, c := range a.chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// sign issues a certificate for pub from tmpl. It makes the rare
// certificates (server certificates, issuing CAs) through
// x509.CreateCertificate, and owns the policy common to them: a random
// serial, key identifiers, and a validity that starts no earlier than now
// minus the allowed clock skew and ends no later than the issuer's. Device
// certificates, which are many, go through signDevice instead. tmpl is not
// modified.
func (a *Authority) sign(tmpl *x509.Certificate, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	if now.After(a.cert.NotAfter) {
		return nil, fmt.Errorf("CA %q expired at %s; create a new CA", a.cert.Subject.CommonName, a.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	t := *tmpl
	if t.NotBefore.IsZero() {
		t.NotBefore = now.Add(-clockSkew)
	}
	if t.NotBefore.Before(a.cert.NotBefore) {
		t.NotBefore = a.cert.NotBefore
	}
	if t.NotAfter.After(a.cert.NotAfter) {
		t.NotAfter = a.cert.NotAfter
	}
	if !t.NotAfter.After(t.NotBefore) {
		return nil, fmt.Errorf("certificate validity %s..%s is empty", t.NotBefore.UTC().Format(time.RFC3339), t.NotAfter.UTC().Format(time.RFC3339))
	}
	var err error
	if t.SerialNumber, err = randomSerial(); err != nil {
		return nil, err
	}
	if t.SubjectKeyId, err = subjectKeyID(pub); err != nil {
		return nil, err
	}
	t.AuthorityKeyId = a.cert.SubjectKeyId
	der, err := x509.CreateCertificate(rand.Reader, &t, a.cert, pub, a.signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// clockSkew backdates NotBefore so that a peer whose clock runs a little
// behind ours accepts a certificate issued just now.
const clockSkew = time.Hour

// newSelfSigned creates a self-signed CA certificate for signer.
func newSelfSigned(subject pkix.Name, signer crypto.Signer, now time.Time, validity time.Duration, maxPathLen int) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(signer.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        maxPathLen == 0,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// randomSerial returns a positive 121-bit serial number with 64 bits from
// the CSPRNG (the CA/Browser Forum's minimum for public CAs) after the time:
// a marker byte 0x01, the time in microseconds (56 bits: until the year
// 4253), then the random bits. Serials so made sort by issue time, in
// hexadecimal too (31 digits each), so the registry's indexes on them grow
// at their end: a random key lands every insert on another index page, and
// each page a batch dirties is one more WAL frame at commit. Measured with
// BenchmarkCommitProvision: about 8% of the registration transaction.
func randomSerial() (*big.Int, error) {
	var b [16]byte
	b[0] = 0x01
	us := uint64(time.Now().UnixMicro())
	for i := 7; i >= 1; i-- {
		b[i] = byte(us)
		us >>= 8
	}
	rand.Read(b[8:])
	return new(big.Int).SetBytes(b[:]), nil
}

// subjectKeyID returns the key identifier of pub by RFC 7093 section 2
// method 1: the leftmost 160 bits of the SHA-256 of the subjectPublicKey bit
// string.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("subject key id: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("subject key id: %w", err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}
