// Package pkcs7 writes and reads the one PKCS #7 message Gatehouse's EST
// front ends answer with: a certs-only SignedData (RFC 7030's Simple PKI
// Response), over HTTPS and over CoAP alike.
package pkcs7

import (
	"encoding/asn1"
	"errors"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)

// CertsOnly returns a degenerate PKCS #7 SignedData holding certs (DER)
// and nothing else: no content, no signers. RFC 7030 calls it a certs-only
// Simple PKI Response; it is what openssl crl2pkcs7 -nocrl writes, and
// EST-coaps Content-Format 281.
//
//	ContentInfo ::= SEQUENCE { contentType signedData, content [0] EXPLICIT SignedData }
//	SignedData ::= SEQUENCE { version 1, digestAlgorithms SET {}, encapContentInfo
//	    SEQUENCE { id-data }, certificates [0] IMPLICIT SET OF Certificate, signerInfos SET {} }
//
// The certificates keep their order (leaf first, when there is one); a
// strict DER encoder would sort the SET, which clients do not expect.
func CertsOnly(certs [][]byte) []byte {
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

// ParseCertsOnly is a strict reader of what CertsOnly writes: it returns
// the certificates (DER, in order) and refuses anything else, even another
// valid SignedData. Tests and fuzzing use it to check the writer (a device
// reading any server's answer wants a lenient reader instead).
func ParseCertsOnly(der []byte) ([][]byte, error) {
	in := cryptobyte.String(der)
	var ci, content, sd, digestAlgs, encap, certs, signers cryptobyte.String
	var oid, dataOID asn1.ObjectIdentifier
	var version int64
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !in.Empty() ||
		!ci.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidSignedData) ||
		!ci.ReadASN1(&content, cbasn1.Tag(0).Constructed().ContextSpecific()) || !ci.Empty() ||
		!content.ReadASN1(&sd, cbasn1.SEQUENCE) || !content.Empty() ||
		!sd.ReadASN1Integer(&version) || version != 1 ||
		!sd.ReadASN1(&digestAlgs, cbasn1.SET) || !digestAlgs.Empty() ||
		!sd.ReadASN1(&encap, cbasn1.SEQUENCE) || !encap.ReadASN1ObjectIdentifier(&dataOID) || !dataOID.Equal(oidData) || !encap.Empty() ||
		!sd.ReadASN1(&certs, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!sd.ReadASN1(&signers, cbasn1.SET) || !signers.Empty() || !sd.Empty() {
		return nil, errors.New("not a certs-only SignedData")
	}
	var out [][]byte
	for !certs.Empty() {
		var c cryptobyte.String
		if !certs.ReadASN1Element(&c, cbasn1.SEQUENCE) {
			return nil, errors.New("bad certificate element")
		}
		out = append(out, c)
	}
	return out, nil
}
