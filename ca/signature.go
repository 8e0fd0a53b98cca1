package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// signatureAlgorithm is how a CA key signs: the DER AlgorithmIdentifier
// naming it, and the hash applied to the message first (0 for Ed25519, which
// signs the message itself).
type signatureAlgorithm struct {
	der  []byte
	hash crypto.Hash
}

var (
	oidECDSAWithSHA256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidEd25519            = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidSHA256WithRSA      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	sigAlgECDSAWithSHA256 = algorithmIdentifier(oidECDSAWithSHA256, false)
	sigAlgECDSAWithSHA384 = algorithmIdentifier(oidECDSAWithSHA384, false)
	sigAlgEd25519         = algorithmIdentifier(oidEd25519, false)
	// RFC 4055 section 5: the parameters of sha256WithRSAEncryption are NULL.
	sigAlgSHA256WithRSA = algorithmIdentifier(oidSHA256WithRSA, true)
)

// signatureAlgorithmFor picks the algorithm a CA key signs with: what
// x509.CreateCertificate would pick, so that the two paths agree.
func signatureAlgorithmFor(pub crypto.PublicKey) (signatureAlgorithm, error) {
	if err := CheckPublicKey(pub); err != nil {
		return signatureAlgorithm{}, fmt.Errorf("CA key: %w", err)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P384() {
			return signatureAlgorithm{sigAlgECDSAWithSHA384, crypto.SHA384}, nil
		}
		return signatureAlgorithm{sigAlgECDSAWithSHA256, crypto.SHA256}, nil
	case ed25519.PublicKey:
		return signatureAlgorithm{sigAlgEd25519, 0}, nil
	case *rsa.PublicKey:
		return signatureAlgorithm{sigAlgSHA256WithRSA, crypto.SHA256}, nil
	}
	return signatureAlgorithm{}, fmt.Errorf("CA key: %T keys cannot sign certificates", pub)
}

// signDER signs msg with the CA's key, once: unlike x509.CreateCertificate,
// it does not verify the signature it made, which would cost as much again
// as making it. Tests verify instead.
func (a *Authority) signDER(msg []byte) ([]byte, error) {
	digest := msg
	if a.alg.hash != 0 {
		h := a.alg.hash.New()
		h.Write(msg)
		digest = h.Sum(nil)
	}
	return a.signer.Sign(rand.Reader, digest, a.alg.hash)
}

// signed wraps tbs (a TBSCertificate) as a signed Certificate.
func (a *Authority) signed(tbs []byte) ([]byte, error) {
	sig, err := a.signDER(tbs)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, len(tbs)+len(a.alg.der)+len(sig)+16))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(a.alg.der)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}

func algorithmIdentifier(oid asn1.ObjectIdentifier, nullParams bool) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if nullParams {
			b.AddASN1NULL()
		}
	})
	return b.BytesOrPanic()
}
