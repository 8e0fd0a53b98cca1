package ca

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"math/big"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"golang.org/x/crypto/ocsp"
)

// OCSPValidity is how long an OCSP response is valid: its NextUpdate is
// ThisUpdate plus this.
const OCSPValidity = time.Hour

// maxOCSPRequestSize caps an OCSP request: one for a single certificate,
// with a nonce, is about 120 bytes.
const maxOCSPRequestSize = 4 << 10

// OCSPStatus is what the registry knows about a certificate, for an OCSP
// response.
type OCSPStatus struct {
	Status    int // ocsp.Good, ocsp.Revoked or ocsp.Unknown
	RevokedAt time.Time
	Reason    int // an RFC 5280 reason code, for ocsp.Revoked
}

// OCSPResponse answers a DER OCSP request (RFC 6960) about a certificate this
// CA issued, asking lookup for the certificate's status. The CA signs the
// response itself, as the CA-designated responder; it is valid from now for
// OCSPValidity. Only the first certificate of a request is answered, and
// signed requests are refused, as golang.org/x/crypto/ocsp parses them.
//
// When the request is bad, or lookup fails, it returns both an OCSP error
// response (malformedRequest, unauthorized for another CA's certificate,
// internalError) and an error saying why: send the bytes whenever they are
// not nil, and log the error.
func (a *Authority) OCSPResponse(reqDER []byte, lookup func(serial *big.Int) (OCSPStatus, error), now time.Time) ([]byte, error) {
	if len(reqDER) > maxOCSPRequestSize {
		return bytes.Clone(ocsp.MalformedRequestErrorResponse), gatehouse.Errorf(gatehouse.ETooLarge, "the OCSP request is %d bytes; the limit is %d", len(reqDER), maxOCSPRequestSize)
	}
	req, err := ocsp.ParseRequest(reqDER)
	if err != nil || req.SerialNumber == nil {
		return bytes.Clone(ocsp.MalformedRequestErrorResponse), gatehouse.Errorf(gatehouse.EInvalid, "the OCSP request is malformed or signed; send an unsigned DER OCSP request (RFC 6960)")
	}
	if !req.HashAlgorithm.Available() || !a.isIssuerOf(req) {
		return bytes.Clone(ocsp.UnauthorizedErrorResponse), gatehouse.Errorf(gatehouse.ENotFound, "the OCSP request is about a certificate of another CA; this responder answers for %q only", describe(a.cert))
	}
	if _, ok := a.signer.Public().(ed25519.PublicKey); ok {
		return bytes.Clone(ocsp.InternalErrorErrorResponse), fmt.Errorf("OCSP response: golang.org/x/crypto/ocsp cannot sign with an Ed25519 CA key; use the CRL")
	}
	st, err := lookup(req.SerialNumber)
	if err != nil {
		return bytes.Clone(ocsp.InternalErrorErrorResponse), fmt.Errorf("OCSP response: look up serial %x: %w", req.SerialNumber, err)
	}
	tmpl := ocsp.Response{
		Status:       st.Status,
		SerialNumber: req.SerialNumber,
		ThisUpdate:   now.UTC(),
		NextUpdate:   now.Add(OCSPValidity).UTC(),
		IssuerHash:   req.HashAlgorithm,
	}
	switch st.Status {
	case ocsp.Good, ocsp.Unknown:
	case ocsp.Revoked:
		if !validReason(st.Reason) {
			return bytes.Clone(ocsp.InternalErrorErrorResponse), fmt.Errorf("OCSP response: serial %x: reason code %d is not an RFC 5280 one", req.SerialNumber, st.Reason)
		}
		tmpl.RevokedAt, tmpl.RevocationReason = st.RevokedAt.UTC(), st.Reason
	default:
		return bytes.Clone(ocsp.InternalErrorErrorResponse), fmt.Errorf("OCSP response: serial %x: lookup returned status %d", req.SerialNumber, st.Status)
	}
	der, err := ocsp.CreateResponse(a.cert, a.cert, tmpl, a.signer)
	if err != nil {
		return bytes.Clone(ocsp.InternalErrorErrorResponse), fmt.Errorf("OCSP response: %w", err)
	}
	return der, nil
}

// isIssuerOf reports whether req's CertID names this CA: the hashes of its
// subject and of its public key, by the request's hash algorithm.
func (a *Authority) isIssuerOf(req *ocsp.Request) bool {
	h := req.HashAlgorithm.New()
	h.Write(a.cert.RawSubject)
	if !bytes.Equal(h.Sum(nil), req.IssuerNameHash) {
		return false
	}
	key, err := spkiPublicKey(a.cert.RawSubjectPublicKeyInfo)
	if err != nil {
		return false
	}
	h.Reset()
	h.Write(key)
	return bytes.Equal(h.Sum(nil), req.IssuerKeyHash)
}
