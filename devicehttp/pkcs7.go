package devicehttp

import (
	"encoding/asn1"
	"encoding/base64"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)

// certsOnly returns a degenerate PKCS #7 SignedData holding certs (DER)
// and nothing else: no content, no signers. RFC 7030 calls it a certs-only
// Simple PKI Response; it is what openssl crl2pkcs7 -nocrl writes.
//
//	ContentInfo ::= SEQUENCE { contentType signedData, content [0] EXPLICIT SignedData }
//	SignedData ::= SEQUENCE { version 1, digestAlgorithms SET {}, encapContentInfo
//	    SEQUENCE { id-data }, certificates [0] IMPLICIT SET OF Certificate, signerInfos SET {} }
//
// The certificates keep their order (leaf first, when there is one); a
// strict DER encoder would sort the SET, which clients do not expect.
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

// base64Lines encodes der as base64 in lines of 76 characters, as MIME
// (and so RFC 7030) writes it, but each ended by LF rather than CRLF: EST
// clients accept both, and GNU base64 -d, which users pipe curl into,
// refuses the CR.
func base64Lines(der []byte) []byte {
	s := base64.StdEncoding.EncodeToString(der)
	var out strings.Builder
	out.Grow(len(s) + len(s)/76 + 1)
	for len(s) > 76 {
		out.WriteString(s[:76])
		out.WriteString("\n")
		s = s[76:]
	}
	out.WriteString(s)
	out.WriteString("\n")
	return []byte(out.String())
}
