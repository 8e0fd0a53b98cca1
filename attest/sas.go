package attest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SAS token limits.
const (
	// MaxSASLength caps the header (or MQTT password) ParseSAS accepts.
	MaxSASLength = 4096
	// DefaultMaxLifetime is how far in the future a token's expiry may lie
	// when a caller passes no maximum of its own.
	DefaultMaxLifetime = 365 * 24 * time.Hour

	sasPrefix    = "SharedAccessSignature"
	maxUnix      = 253402300799 // 9999-12-31T23:59:59Z; time.Unix overflows far beyond
	maxSASFields = 8
)

// SAS is a parsed shared access signature token:
//
//	SharedAccessSignature sr={resource}&sig={signature}&se={expiry}&skn={keyname}
//
// The signature covers RawResource exactly as sent, because SDKs differ in
// how they write it (URL-encoded, lower-cased, or not encoded at all); the
// decoded Resource is what names the scope and the registration.
type SAS struct {
	RawResource string    // sr as it appears in the token; what the signature covers
	Resource    string    // sr, URL-decoded
	Signature   []byte    // sig, decoded: 32 bytes of HMAC-SHA256
	Expiry      time.Time // se, whole Unix seconds
	KeyName     string    // skn, URL-decoded; "" if absent ("registration" for DPS)
}

// ParseSAS parses a SAS token as sent in an HTTP Authorization header or an
// MQTT password. Fields may come in any order and skn may be absent; sr,
// sig and se are required, no field may appear twice, and fields with other
// names are ignored (the signature does not cover them). The
// "SharedAccessSignature" prefix is required, in any case. Errors are
// attestation failures with reason ReasonMalformed.
func ParseSAS(header string) (*SAS, error) {
	if len(header) > MaxSASLength {
		return nil, fail(ReasonMalformed, "token is longer than "+strconv.Itoa(MaxSASLength)+" bytes")
	}
	s := strings.TrimSpace(header)
	if len(s) <= len(sasPrefix) || !asciiEqualFold(s[:len(sasPrefix)], sasPrefix) || (s[len(sasPrefix)] != ' ' && s[len(sasPrefix)] != '\t') {
		return nil, fail(ReasonMalformed, "missing SharedAccessSignature prefix")
	}
	s = strings.TrimLeft(s[len(sasPrefix):], " \t")

	var (
		sas              SAS
		haveSig, haveSkn bool
		sig, se          string
		haveSr, haveSe   bool
		fields           int
		seenOther        [maxSASFields]string
	)
	for part := range strings.SplitSeq(s, "&") {
		fields++
		if fields > maxSASFields {
			return nil, fail(ReasonMalformed, "too many fields")
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			return nil, fail(ReasonMalformed, "field without a name or '='")
		}
		var seen *bool
		switch strings.ToLower(name) {
		case "sr":
			seen = &haveSr
			sas.RawResource = value
		case "sig":
			seen = &haveSig
			sig = value
		case "se":
			seen = &haveSe
			se = value
		case "skn":
			seen = &haveSkn
			sas.KeyName = value
		default:
			lower := strings.ToLower(name)
			for _, o := range seenOther[:fields-1] {
				if o == lower {
					return nil, fail(ReasonMalformed, "duplicate field")
				}
			}
			seenOther[fields-1] = lower
			continue
		}
		if *seen {
			return nil, fail(ReasonMalformed, "duplicate field "+strings.ToLower(name))
		}
		*seen = true
	}
	if !haveSr || !haveSig || !haveSe {
		return nil, fail(ReasonMalformed, "sr, sig and se are required")
	}

	var err error
	if sas.RawResource == "" {
		return nil, fail(ReasonMalformed, "empty sr")
	}
	if sas.Resource, err = url.PathUnescape(sas.RawResource); err != nil {
		return nil, fail(ReasonMalformed, "sr is not URL-encoded properly")
	}
	if sas.KeyName, err = url.PathUnescape(sas.KeyName); err != nil {
		return nil, fail(ReasonMalformed, "skn is not URL-encoded properly")
	}
	// PathUnescape, not QueryUnescape: an SDK that sends sig unencoded
	// has '+' in it, which must stay a '+'.
	if sig, err = url.PathUnescape(sig); err != nil {
		return nil, fail(ReasonMalformed, "sig is not URL-encoded properly")
	}
	if sas.Signature, err = decodeSignature(sig); err != nil {
		return nil, err
	}
	// The signature covers se as sent; accepting only canonical decimal
	// (no sign, no leading zeros) lets Verify rebuild it from Expiry.
	if !canonicalDecimal(se) {
		return nil, fail(ReasonMalformed, "se is not a Unix time in seconds")
	}
	secs, err := strconv.ParseInt(se, 10, 64)
	if err != nil || secs > maxUnix {
		return nil, fail(ReasonMalformed, "se is after the year 9999")
	}
	sas.Expiry = time.Unix(secs, 0)
	return &sas, nil
}

func decodeSignature(s string) ([]byte, error) {
	enc := base64.StdEncoding
	if !strings.HasSuffix(s, "=") {
		enc = base64.RawStdEncoding
	}
	b, err := enc.Strict().DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return nil, fail(ReasonMalformed, "sig is not the base64 of 32 bytes")
	}
	return b, nil
}

func canonicalDecimal(s string) bool {
	if s == "" || len(s) > 19 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats the token in its canonical form: sr as received, sig
// URL-encoded, skn only if present. ParseSAS(s.String()) gives s back.
func (s *SAS) String() string {
	var b strings.Builder
	b.WriteString("SharedAccessSignature sr=")
	b.WriteString(s.RawResource)
	b.WriteString("&sig=")
	b.WriteString(urlEncode(base64.StdEncoding.EncodeToString(s.Signature)))
	b.WriteString("&se=")
	b.WriteString(strconv.FormatInt(s.Expiry.Unix(), 10))
	if s.KeyName != "" {
		b.WriteString("&skn=")
		b.WriteString(urlEncode(s.KeyName))
	}
	return b.String()
}

// sign returns HMAC-SHA256(key, rawResource + "\n" + se).
func sign(key []byte, rawResource string, expiry int64) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(rawResource))
	var buf [21]byte
	m.Write(strconv.AppendInt(append(buf[:0], '\n'), expiry, 10))
	return m.Sum(nil)
}

// signedBy reports in constant time whether key made s's signature. An
// empty key makes nothing: an enrollment without a key must admit no one.
func (s *SAS) signedBy(key []byte) bool {
	if len(key) == 0 {
		return false
	}
	return hmac.Equal(sign(key, s.RawResource, s.Expiry.Unix()), s.Signature)
}

// checkTime refuses a token that has expired (se <= now) or that expires
// further than maxLifetime from now (0 or less: DefaultMaxLifetime).
func (s *SAS) checkTime(now time.Time, maxLifetime time.Duration) error {
	if maxLifetime <= 0 {
		maxLifetime = DefaultMaxLifetime
	}
	if !s.Expiry.After(now) {
		return fail(ReasonExpired, "token expired at "+s.Expiry.UTC().Format(time.RFC3339))
	}
	if s.Expiry.Sub(now) > maxLifetime {
		return fail(ReasonLifetime, "token expires at "+s.Expiry.UTC().Format(time.RFC3339)+", more than "+maxLifetime.String()+" from now")
	}
	return nil
}

// Verify checks that key signed the token (in constant time), that the
// token has not expired at now, and that it does not expire more than
// maxLifetime after now (0 or less: DefaultMaxLifetime). It does not check
// the resource: see CheckResource.
func (s *SAS) Verify(key []byte, now time.Time, maxLifetime time.Duration) error {
	if !s.signedBy(key) {
		return fail(ReasonBadSignature, "signature does not match the key")
	}
	return s.checkTime(now, maxLifetime)
}

// VerifySASWithKeys is Verify for an enrollment with several keys (primary,
// secondary): it returns the index of the key that signed the token. Every
// key is tried, each in constant time, so timing does not tell which one
// matched; empty keys (an absent secondary) match nothing. On error the
// index is -1.
func VerifySASWithKeys(sas *SAS, keys [][]byte, now time.Time, maxLifetime time.Duration) (int, error) {
	index := -1
	for i, k := range keys {
		if sas.signedBy(k) && index < 0 {
			index = i
		}
	}
	if index < 0 {
		return -1, fail(ReasonBadSignature, "signature matches none of "+strconv.Itoa(len(keys))+" keys")
	}
	if err := sas.checkTime(now, maxLifetime); err != nil {
		return -1, err
	}
	return index, nil
}

// CheckResource checks that the decoded resource is
// "{scope}/registrations/{registrationID}", ignoring ASCII case (some SDKs
// lower-case it), as DPS tokens name it.
func (s *SAS) CheckResource(scope, registrationID string) error {
	return s.checkResource(scope, "/registrations/", registrationID)
}

// CheckDeviceResource checks that the decoded resource is
// "{scope}/devices/{deviceID}", ignoring ASCII case, as IoT Hub style
// tokens (MQTT passwords) name it.
func (s *SAS) CheckDeviceResource(scope, deviceID string) error {
	return s.checkResource(scope, "/devices/", deviceID)
}

func (s *SAS) checkResource(scope, middle, id string) error {
	r := s.Resource
	ok := scope != "" && id != "" &&
		len(r) == len(scope)+len(middle)+len(id) &&
		asciiEqualFold(r[:len(scope)], scope) &&
		asciiEqualFold(r[len(scope):len(scope)+len(middle)], middle) &&
		asciiEqualFold(r[len(scope)+len(middle):], id)
	if !ok {
		return fail(ReasonWrongResource, "token names "+strconv.Quote(truncate(r, 200))+", want "+strconv.Quote(scope+middle+id))
	}
	return nil
}

// asciiEqualFold is strings.EqualFold for ASCII only: Unicode folding
// (the Kelvin sign folds to 'k') has no place in identifiers.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// NewSAS returns a SAS token for resource ("{scope}/registrations/{id}"),
// signed with key and valid until expiry, written as the Azure IoT C SDK
// writes it: sr URL-encoded ('/' as %2F), sig URL-encoded, no skn. It is for
// tests and the device SDK.
func NewSAS(key []byte, resource string, expiry time.Time) string {
	sr := urlEncode(resource)
	sig := sign(key, sr, expiry.Unix())
	return "SharedAccessSignature sr=" + sr +
		"&sig=" + urlEncode(base64.StdEncoding.EncodeToString(sig)) +
		"&se=" + strconv.FormatInt(expiry.Unix(), 10)
}

// urlEncode percent-encodes every byte but RFC 3986's unreserved ones, so
// that url.PathUnescape inverts it (url.QueryEscape writes ' ' as '+',
// which PathUnescape keeps).
func urlEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
