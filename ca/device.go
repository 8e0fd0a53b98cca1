package ca

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"net/url"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// DeviceClockSkew backdates a device certificate's NotBefore, so that a
// verifier whose clock runs a little behind ours accepts it at once.
const DeviceClockSkew = 5 * time.Minute

// Profile is a device certificate before it is signed: what Options see and
// change. The CA decides it, not the CSR: IssueDeviceCertificate fills it
// from its arguments, then applies the options in order.
type Profile struct {
	Scope    string
	DeviceID string
	// PublicKey is the CSR's key, which the certificate certifies. Options
	// may inspect it; changing it has no effect.
	PublicKey crypto.PublicKey
	// NotBefore and NotAfter bound the validity; both are clamped to the
	// CA's own validity after the options ran.
	NotBefore, NotAfter time.Time
	// DNSNames go into the subjectAltName next to the device URI.
	DNSNames []string
	// CRLDistributionPoints and OCSPServers are http(s) URLs that tell a
	// verifier where to check revocation.
	CRLDistributionPoints []string
	OCSPServers           []string
}

// An Option is one piece of device certificate policy, in the manner of
// step-ca's sign options: a modifier changes the Profile, a validator returns
// an error to refuse the certificate (a *gatehouse.Error, to tell the caller
// what to fix). IssueDeviceCertificate applies them in order, in one place,
// before anything is signed.
type Option func(*Profile) error

// WithCRLDistributionPoint adds a CRL distribution point URL (http or https).
func WithCRLDistributionPoint(u string) Option {
	return func(p *Profile) error {
		if err := checkURL("CRL distribution point", u); err != nil {
			return err
		}
		p.CRLDistributionPoints = append(p.CRLDistributionPoints, u)
		return nil
	}
}

// WithOCSPServer adds an OCSP responder URL (http or https) to the
// certificate's authority information access.
func WithOCSPServer(u string) Option {
	return func(p *Profile) error {
		if err := checkURL("OCSP server", u); err != nil {
			return err
		}
		p.OCSPServers = append(p.OCSPServers, u)
		return nil
	}
}

// WithDNSNames adds DNS names to the subjectAltName, for devices that also
// serve TLS under a name.
func WithDNSNames(names ...string) Option {
	return func(p *Profile) error {
		for _, n := range names {
			if err := validateDNSName(n); err != nil {
				return gatehouse.Errorf(gatehouse.EInvalid, "DNS name %q %s", truncate(n, 80), err)
			}
		}
		p.DNSNames = append(p.DNSNames, names...)
		return nil
	}
}

// maxProfileNames bounds the names and URLs options may add, so a
// certificate stays small.
const maxProfileNames = 16

func checkURL(what, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return gatehouse.Errorf(gatehouse.EInvalid, "%s %q is not an http or https URL", what, truncate(s, 200))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return gatehouse.Errorf(gatehouse.EInvalid, "%s %q must be printable ASCII; percent-encode other characters", what, truncate(s, 200))
		}
	}
	return nil
}

// IssueDeviceCertificate issues a device's certificate for the key in csr,
// which must come from ParseCSR (that checks its signature; this does not).
// Nothing else in the CSR counts: the certificate has subject CN deviceID, a
// single URI SAN DeviceURI(scope, deviceID), key usage digitalSignature (and
// keyEncipherment for RSA keys), extended key usage clientAuth, CA:false, key
// identifiers, a random 128-bit serial, and a validity from now minus
// DeviceClockSkew to now plus validity, within the CA's own. opts then add to
// or refuse that profile. It returns the certificate in DER.
//
// The certificate is assembled here rather than by x509.CreateCertificate,
// which verifies each signature it makes and so costs about twice the
// signing; the tests check what comes out against crypto/x509 and openssl.
func (a *Authority) IssueDeviceCertificate(csr *x509.CertificateRequest, scope, deviceID string, validity time.Duration, now time.Time, opts ...Option) ([]byte, error) {
	if csr == nil {
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "a CSR is required")
	}
	if err := CheckPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if validity <= 0 {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "certificate validity must be positive, not %s", validity)
	}
	p := Profile{
		Scope:     scope,
		DeviceID:  deviceID,
		PublicKey: csr.PublicKey,
		NotBefore: now.Add(-DeviceClockSkew),
		NotAfter:  now.Add(validity),
	}
	for _, opt := range opts {
		if err := opt(&p); err != nil {
			return nil, err
		}
	}
	return a.signDevice(&p, csr.PublicKey, csr.RawSubjectPublicKeyInfo, now)
}

// signDevice is the one function that makes device certificates: it checks
// the finished profile, clamps its validity to the CA's, encodes the
// TBSCertificate and signs it once.
func (a *Authority) signDevice(p *Profile, pub crypto.PublicKey, spki []byte, now time.Time) ([]byte, error) {
	if err := gatehouse.ValidateScopeID(p.Scope); err != nil {
		return nil, err
	}
	if err := gatehouse.ValidateDeviceID(p.DeviceID); err != nil {
		return nil, err
	}
	if n := len(p.DNSNames) + len(p.CRLDistributionPoints) + len(p.OCSPServers); n > maxProfileNames {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "the certificate would carry %d names and URLs; the limit is %d", n, maxProfileNames)
	}
	if now.After(a.cert.NotAfter) {
		return nil, fmt.Errorf("issue device certificate: CA %q expired at %s; create or import a new one", a.cert.Subject.CommonName, a.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	notBefore, notAfter := p.NotBefore.UTC().Truncate(time.Second), p.NotAfter.UTC().Truncate(time.Second)
	if notBefore.Before(a.cert.NotBefore) {
		notBefore = a.cert.NotBefore.UTC()
	}
	if notAfter.After(a.cert.NotAfter) {
		notAfter = a.cert.NotAfter.UTC()
	}
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("issue device certificate: validity %s..%s is empty", notBefore.Format(time.RFC3339), notAfter.Format(time.RFC3339))
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	ski, err := spkiKeyID(spki)
	if err != nil {
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "the CSR's public key info is malformed")
	}
	_, isRSA := pub.(*rsa.PublicKey)

	b := cryptobyte.NewBuilder(make([]byte, 0, 512+len(spki)))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1Int64(2) // v3
		})
		b.AddASN1BigInt(serial)
		b.AddBytes(a.alg.der)
		b.AddBytes(a.cert.RawSubject) // issuer
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addTime(b, notBefore)
			addTime(b, notAfter)
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // subject
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidCommonName)
					b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(p.DeviceID)) })
				})
			})
		})
		b.AddBytes(spki)
		b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				// The order crypto/x509 uses, so that tests can compare
				// the two byte for byte.
				if isRSA {
					b.AddBytes(extKeyUsageSignEncipher)
				} else {
					b.AddBytes(extKeyUsageSign)
				}
				b.AddBytes(extEKUClientAuth)
				b.AddBytes(extBasicConstraintsLeaf)
				addExtension(b, oidSubjectKeyID, false, func(b *cryptobyte.Builder) { b.AddASN1OctetString(ski) })
				if len(a.cert.SubjectKeyId) > 0 {
					addExtension(b, oidAuthorityKeyID, false, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(a.cert.SubjectKeyId) })
						})
					})
				}
				if len(p.OCSPServers) > 0 {
					addExtension(b, oidAuthorityInfoAccess, false, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							for _, u := range p.OCSPServers {
								b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
									b.AddASN1ObjectIdentifier(oidAccessOCSP)
									addGeneralName(b, generalNameURI, u)
								})
							}
						})
					})
				}
				addExtension(b, oidSubjectAltName, false, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						for _, n := range p.DNSNames {
							addGeneralName(b, generalNameDNS, n)
						}
						addGeneralName(b, generalNameURI, DeviceURI(p.Scope, p.DeviceID))
					})
				})
				if len(p.CRLDistributionPoints) > 0 {
					addExtension(b, oidCRLDistributionPoints, false, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							for _, u := range p.CRLDistributionPoints {
								b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // DistributionPoint
									b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { // distributionPoint
										b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { // fullName
											addGeneralName(b, generalNameURI, u)
										})
									})
								})
							}
						})
					})
				}
			})
		})
	})
	tbs, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("issue device certificate: encode: %w", err)
	}
	der, err := a.signed(tbs)
	if err != nil {
		return nil, fmt.Errorf("issue device certificate: %w", err)
	}
	return der, nil
}

var (
	oidCommonName            = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidSubjectKeyID          = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidKeyUsage              = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidSubjectAltName        = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidBasicConstraints      = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidCRLDistributionPoints = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidAuthorityKeyID        = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtKeyUsage           = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidAuthorityInfoAccess   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidAccessOCSP            = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1}
	oidEKUClientAuth         = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
)

// The extensions every device certificate carries, encoded once.
var (
	// basicConstraints, critical: SEQUENCE {}, since cA defaults to FALSE
	// and DER omits defaults.
	extBasicConstraintsLeaf = extension(oidBasicConstraints, true, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {})
	})
	// keyUsage, critical: digitalSignature is bit 0, keyEncipherment bit 2;
	// the first byte of a BIT STRING counts the unused trailing bits.
	extKeyUsageSign = extension(oidKeyUsage, true, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) { b.AddBytes([]byte{7, 0x80}) })
	})
	extKeyUsageSignEncipher = extension(oidKeyUsage, true, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) { b.AddBytes([]byte{5, 0xa0}) })
	})
	extEKUClientAuth = extension(oidExtKeyUsage, false, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidEKUClientAuth) })
	})
)

func extension(oid asn1.ObjectIdentifier, critical bool, value cryptobyte.BuilderContinuation) []byte {
	var b cryptobyte.Builder
	addExtension(&b, oid, critical, value)
	return b.BytesOrPanic()
}

// addExtension adds an Extension: SEQUENCE { extnID, critical DEFAULT
// FALSE, extnValue OCTET STRING (DER of the value) }.
func addExtension(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, critical bool, value cryptobyte.BuilderContinuation) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1(cbasn1.OCTET_STRING, value)
	})
}

// GeneralName tags (RFC 5280 section 4.2.1.6), IMPLICIT IA5String.
const (
	generalNameDNS = 2
	generalNameURI = 6
)

func addGeneralName(b *cryptobyte.Builder, tag uint8, s string) {
	b.AddASN1(cbasn1.Tag(tag).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
}

// addTime adds a certificate time as RFC 5280 section 4.1.2.5 requires:
// UTCTime through 2049, GeneralizedTime from 2050.
func addTime(b *cryptobyte.Builder, t time.Time) {
	if y := t.Year(); y >= 1950 && y < 2050 {
		b.AddASN1UTCTime(t)
	} else {
		b.AddASN1GeneralizedTime(t)
	}
}

// spkiKeyID returns the key identifier of a DER SubjectPublicKeyInfo, as
// subjectKeyID does for a parsed key (RFC 7093 section 2 method 1), without
// marshalling the key again.
func spkiKeyID(spki []byte) ([]byte, error) {
	bits, err := spkiPublicKey(spki)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(bits)
	return sum[:20], nil
}

// spkiPublicKey returns the subjectPublicKey bits of a DER
// SubjectPublicKeyInfo.
func spkiPublicKey(spki []byte) ([]byte, error) {
	in := cryptobyte.String(spki)
	var seq cryptobyte.String
	var bits asn1.BitString
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() ||
		!seq.SkipASN1(cbasn1.SEQUENCE) || !seq.ReadASN1BitString(&bits) || !seq.Empty() {
		return nil, fmt.Errorf("malformed SubjectPublicKeyInfo")
	}
	return bits.RightAlign(), nil
}
