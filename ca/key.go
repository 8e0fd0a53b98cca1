package ca

import (
	"crypto"
	"crypto/dsa" //lint:ignore SA1019 only to name DSA keys in an error
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/gatehouse-iot/gatehouse"
)

// Key limits. P-521 is left out on purpose: many embedded TLS stacks lack it,
// and P-384 already exceeds what a device credential needs.
const (
	minRSABits = 2048
	maxRSABits = 8192
	// minRSAExponent is 2^16+1, the lower end of the range the CA/Browser
	// Forum recommends; small exponents have a history of misuse.
	minRSAExponent = 1<<16 + 1
)

const acceptedKeys = "use ECDSA P-256 or P-384, Ed25519, or RSA with 2048 to 8192 bits"

// CheckPublicKey reports whether Gatehouse accepts pub, as a device's key or a
// CA's: ECDSA on P-256 or P-384, Ed25519, or RSA of 2048 to 8192 bits with an
// odd public exponent of at least 65537. Anything else is EUnsupportedKey,
// with a message naming what is accepted.
func CheckPublicKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return gatehouse.Errorf(gatehouse.EUnsupportedKey, "the ECDSA key has no curve; %s", acceptedKeys)
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		}
		return gatehouse.Errorf(gatehouse.EUnsupportedKey, "ECDSA keys on curve %s are not accepted; %s", k.Curve.Params().Name, acceptedKeys)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return gatehouse.Errorf(gatehouse.EUnsupportedKey, "the Ed25519 key has %d bytes, not %d", len(k), ed25519.PublicKeySize)
		}
		return nil
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return gatehouse.Errorf(gatehouse.EUnsupportedKey, "the RSA key has no modulus; %s", acceptedKeys)
		}
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return gatehouse.Errorf(gatehouse.EUnsupportedKey, "RSA keys of %d bits are not accepted; %s", bits, acceptedKeys)
		}
		if k.E < minRSAExponent || k.E&1 == 0 {
			return gatehouse.Errorf(gatehouse.EUnsupportedKey, "the RSA public exponent %d is not accepted; use an odd exponent of at least 65537 (65537 is the usual choice)", k.E)
		}
		return nil
	case *dsa.PublicKey:
		return gatehouse.Errorf(gatehouse.EUnsupportedKey, "DSA keys are not accepted; %s", acceptedKeys)
	case nil:
		return gatehouse.Errorf(gatehouse.EUnsupportedKey, "the key's algorithm is not one Gatehouse knows; %s", acceptedKeys)
	}
	return gatehouse.Errorf(gatehouse.EUnsupportedKey, "%T keys are not accepted; %s", pub, acceptedKeys)
}

// MarshalKey encodes a CA's private key as PKCS #8 DER, for sealing and
// storing. It fails for a signer whose key cannot leave it (an HSM, a KMS).
func MarshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %T cannot be exported as PKCS #8", key)
	}
	return der, nil
}

// ParseKey decodes a PKCS #8 DER private key, as MarshalKey writes it.
func ParseKey(der []byte) (crypto.Signer, error) {
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("parse key: not a PKCS #8 private key")
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse key: a %T cannot sign", priv)
	}
	return signer, nil
}
