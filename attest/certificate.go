package attest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// MaxIntermediates caps the certificates a device may present besides its
// leaf, which bounds the work of building its chain.
const MaxIntermediates = 16

// VerifyChain checks that leaf chains up to anchor at time now, through any
// of intermediates, and that the chain allows client authentication (an
// extended key usage of clientAuth or any, or none at all). The anchor may
// be a root or an intermediate: it is the only trusted certificate, and
// every certificate the device presents is merely a candidate
// intermediate. A leaf that is the anchor itself is refused.
//
// depth is the length of the shortest chain from leaf to anchor, both
// included (2 when the anchor issued the leaf). Among the enrollments a
// device chains to, the one with the smallest depth is the most specific.
func VerifyChain(leaf *x509.Certificate, intermediates []*x509.Certificate, anchor *x509.Certificate, now time.Time) (depth int, err error) {
	if leaf == nil || anchor == nil {
		return 0, fail(ReasonMalformed, "no certificate")
	}
	if len(intermediates) > MaxIntermediates {
		return 0, fail(ReasonMalformed, strconv.Itoa(len(intermediates))+" intermediates; the limit is "+strconv.Itoa(MaxIntermediates))
	}
	if bytes.Equal(leaf.Raw, anchor.Raw) {
		return 0, fail(ReasonUntrusted, "the leaf is the anchor itself")
	}
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	pool := x509.NewCertPool()
	for _, c := range intermediates {
		if c != nil {
			pool.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: pool,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		var invalid x509.CertificateInvalidError
		if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
			if now.Before(invalid.Cert.NotBefore) {
				return 0, fail(ReasonNotYetValid, err.Error())
			}
			return 0, fail(ReasonExpired, err.Error())
		}
		return 0, fail(ReasonUntrusted, err.Error())
	}
	for _, c := range chains {
		if depth == 0 || len(c) < depth {
			depth = len(c)
		}
	}
	return depth, nil
}

// Thumbprint returns the hex SHA-256 of a certificate's DER encoding, in
// lower case: the name an individual X.509 enrollment gives its device.
func Thumbprint(cert *x509.Certificate) string {
	h := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(h[:])
}

// NormalizeThumbprint accepts a SHA-256 thumbprint as operators paste it
// (upper or lower case, with or without ':' or ' ' between bytes) and
// returns it as Thumbprint writes it.
func NormalizeThumbprint(s string) (string, error) {
	t := strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s)))
	if b, err := hex.DecodeString(t); err != nil || len(b) != sha256.Size {
		return "", gatehouse.Errorf(gatehouse.EInvalid, "thumbprint must be the 64 hex digits of a SHA-256 digest")
	}
	return t, nil
}

// RegistrationIDFromCertificate returns the registration ID a device's
// certificate claims: its subject CN, which must be a valid device ID
// (the DPS rule). A CN that is not one is an attestation failure with
// reason ReasonInvalidID.
func RegistrationIDFromCertificate(leaf *x509.Certificate) (string, error) {
	if leaf == nil {
		return "", fail(ReasonMalformed, "no certificate")
	}
	cn := leaf.Subject.CommonName
	if err := gatehouse.ValidateDeviceID(cn); err != nil {
		return "", fail(ReasonInvalidID, "subject CN: "+gatehouse.ErrorMessage(err))
	}
	return cn, nil
}

// NewVerificationCode returns a fresh proof-of-possession challenge for a
// group CA: 32 lowercase hex digits (128 random bits).
func NewVerificationCode() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}

// VerifyPossession checks a proof of possession of ca's private key, in
// the DPS manner: proof must be signed by ca, name code as its subject CN
// (hex, any case), and be valid at now, as must ca. Only an operator sees
// these errors, so their messages say what to fix.
func VerifyPossession(ca, proof *x509.Certificate, code string, now time.Time) error {
	if ca == nil || proof == nil {
		return failOperator(ReasonMalformed, "both the CA certificate and the proof certificate are required")
	}
	if code == "" {
		return failOperator(ReasonMalformed, "the CA has no verification code; request one first")
	}
	if err := proof.CheckSignatureFrom(ca); err != nil {
		return failOperator(ReasonBadSignature, "the proof certificate is not signed by this CA's key (or the CA certificate may not sign certificates): "+err.Error())
	}
	cn := strings.ToLower(proof.Subject.CommonName)
	if subtle.ConstantTimeCompare([]byte(cn), []byte(strings.ToLower(code))) != 1 {
		return failOperator(ReasonWrongCode, "the proof certificate's subject CN must be the verification code")
	}
	for _, c := range []struct {
		what string
		cert *x509.Certificate
	}{{"proof", proof}, {"CA", ca}} {
		if now.Before(c.cert.NotBefore) {
			return failOperator(ReasonNotYetValid, "the "+c.what+" certificate is not valid until "+c.cert.NotBefore.UTC().Format(time.RFC3339))
		}
		if now.After(c.cert.NotAfter) {
			return failOperator(ReasonExpired, "the "+c.what+" certificate expired at "+c.cert.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return nil
}
