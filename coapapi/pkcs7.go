package coapapi

import (
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)

// certsOnly returns a degenerate PKCS #7 SignedData holding certs (DER) and
// nothing else: no content, no signers (RFC 7030's certs-only Simple PKI
// Response, EST-coaps Content-Format 281). The certificates keep their
// order, leaf first when there is one.
func certsOnly(certs [][]byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(*cryptobyte.Builder) {})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidData)
				})
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					for _, c := range certs {
						b.AddBytes(c)
					}
				})
				b.AddASN1(cbasn1.SET, func(*cryptobyte.Builder) {})
			})
		})
	})
	return b.BytesOrPanic()
}

// parseCertsOnly returns the certificates (DER) of a certs-only PKCS #7,
// as certsOnly writes it. Tests and fuzzing use it to check the encoder.
func parseCertsOnly(der []byte) ([][]byte, bool) {
	in := cryptobyte.String(der)
	var ci, content, sd, certs cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !in.Empty() ||
		!ci.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidSignedData) ||
		!ci.ReadASN1(&content, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!content.ReadASN1(&sd, cbasn1.SEQUENCE) {
		return nil, false
	}
	var version int64
	var skip cryptobyte.String
	if !sd.ReadASN1Integer(&version) || !sd.ReadASN1(&skip, cbasn1.SET) || !sd.ReadASN1(&skip, cbasn1.SEQUENCE) ||
		!sd.ReadASN1(&certs, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, false
	}
	var out [][]byte
	for !certs.Empty() {
		var c cryptobyte.String
		if !certs.ReadASN1Element(&c, cbasn1.SEQUENCE) {
			return nil, false
		}
		out = append(out, c)
	}
	return out, true
}
