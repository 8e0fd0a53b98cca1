package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// ScopeCAValidity is how long a scope's issuing CA is valid, at most: it
// never outlives the root that issued it.
const ScopeCAValidity = 5 * 365 * 24 * time.Hour

// NewScopeCA creates a scope's issuing CA: a fresh ECDSA P-256 key and a
// certificate for it signed by root, "Gatehouse {scope} Issuing CA", that may
// issue device certificates but no further CAs (path length 0). Its chain is
// root and whatever is above root. Store its key with MarshalKey, sealed.
func NewScopeCA(root *Authority, scope string, now time.Time) (*Authority, error) {
	if err := gatehouse.ValidateScopeID(scope); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new scope CA: %w", err)
	}
	cert, err := root.sign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "Gatehouse " + scope + " Issuing CA", Organization: []string{"Gatehouse"}},
		NotAfter:              now.Add(ScopeCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}, key.Public(), now)
	if err != nil {
		return nil, fmt.Errorf("new scope CA %q: %w", scope, err)
	}
	chain := append([]*x509.Certificate{root.cert}, root.chain...)
	return New(cert, key, chain...)
}
