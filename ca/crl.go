package ca

import (
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// A RevokedCertificate is one entry of a CRL.
type RevokedCertificate struct {
	Serial    *big.Int
	RevokedAt time.Time
	// Reason is an RFC 5280 reason code, one of gatehouse.RevocationReasons;
	// 0 (unspecified) leaves the reason out, as RFC 5280 asks.
	Reason int
}

// CreateCRL returns the CA's certificate revocation list in DER: revoked,
// with its reasons as entry extensions, CRL number number (positive, and
// growing with each CRL the CA publishes), valid from thisUpdate to
// nextUpdate. CRLs are rare, so this goes through x509.CreateRevocationList,
// which checks its own signature.
func (a *Authority) CreateCRL(revoked []RevokedCertificate, number int64, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	if number <= 0 {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "CRL number must be positive, not %d", number)
	}
	if !nextUpdate.After(thisUpdate) {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "CRL nextUpdate %s must be after thisUpdate %s", nextUpdate.UTC().Format(time.RFC3339), thisUpdate.UTC().Format(time.RFC3339))
	}
	entries := make([]x509.RevocationListEntry, len(revoked))
	for i, r := range revoked {
		if r.Serial == nil || r.Serial.Sign() <= 0 {
			return nil, gatehouse.Errorf(gatehouse.EInvalid, "CRL entry %d has no positive serial number", i+1)
		}
		if !validReason(r.Reason) {
			return nil, gatehouse.Errorf(gatehouse.EInvalid, "CRL entry %d has reason code %d, which RFC 5280 does not define; use one of gatehouse.RevocationReasons", i+1, r.Reason)
		}
		entries[i] = x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.RevokedAt.UTC(), ReasonCode: r.Reason}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(number),
		ThisUpdate:                thisUpdate.UTC(),
		NextUpdate:                nextUpdate.UTC(),
		RevokedCertificateEntries: entries,
	}, a.cert, a.signer)
	if err != nil {
		return nil, fmt.Errorf("create CRL: %w", err)
	}
	return der, nil
}

func validReason(code int) bool {
	for _, c := range gatehouse.RevocationReasons {
		if c == code {
			return true
		}
	}
	return false
}
