package attest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

// dpsToken was made with Python's hmac and urllib.parse.quote from the DPS
// vector's device key, as the C SDK writes it.
const (
	dpsScope  = "0ne00000a0a"
	dpsExpiry = 1893456000
	dpsToken  = "SharedAccessSignature sr=0ne00000a0a%2Fregistrations%2Fsn-007-888-abc-mac-a1-b2-c3-d4-e5-f6&sig=d406MgvRehEpDFzZ%2BPGPWcCB7jkUcyicJxto%2BWNugHg%3D&se=1893456000&skn=registration"
)

var testNow = time.Unix(dpsExpiry, 0).Add(-time.Hour)

// tokenFor builds a token by hand, signing sr exactly as given.
func tokenFor(key []byte, sr string, se string, extra string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sr + "\n" + se))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(m.Sum(nil)))
	return "SharedAccessSignature sr=" + sr + "&sig=" + sig + "&se=" + se + extra
}

func TestParseSAS(t *testing.T) {
	sig := make([]byte, 32)
	for i := range sig {
		sig[i] = byte(i * 7)
	}
	sig64 := base64.StdEncoding.EncodeToString(sig) // has '+' and '/'
	tests := []struct {
		name   string
		header string
		want   *SAS
	}{
		{"c sdk", "SharedAccessSignature sr=s%2Fregistrations%2Fd&sig=" + url.QueryEscape(sig64) + "&se=100&skn=registration",
			&SAS{RawResource: "s%2Fregistrations%2Fd", Resource: "s/registrations/d", Signature: sig, Expiry: time.Unix(100, 0), KeyName: "registration"}},
		{"any order", "SharedAccessSignature skn=registration&se=100&sig=" + url.QueryEscape(sig64) + "&sr=s%2Fregistrations%2Fd",
			&SAS{RawResource: "s%2Fregistrations%2Fd", Resource: "s/registrations/d", Signature: sig, Expiry: time.Unix(100, 0), KeyName: "registration"}},
		{"no skn, unencoded sr and sig", "SharedAccessSignature sr=s/registrations/d&sig=" + sig64 + "&se=100",
			&SAS{RawResource: "s/registrations/d", Resource: "s/registrations/d", Signature: sig, Expiry: time.Unix(100, 0)}},
		{"lower-case encoding", "sharedaccesssignature sr=s%2fregistrations%2fd&sig=" + strings.NewReplacer("%2B", "%2b", "%2F", "%2f", "%3D", "%3d").Replace(url.QueryEscape(sig64)) + "&se=100",
			&SAS{RawResource: "s%2fregistrations%2fd", Resource: "s/registrations/d", Signature: sig, Expiry: time.Unix(100, 0)}},
		{"unpadded sig", "SharedAccessSignature sr=x&sig=" + strings.TrimRight(sig64, "=") + "&se=100",
			&SAS{RawResource: "x", Resource: "x", Signature: sig, Expiry: time.Unix(100, 0)}},
		{"upper-case field names, spaces", "  SHAREDACCESSSIGNATURE \t SR=x&SIG=" + sig64 + "&SE=0  ",
			&SAS{RawResource: "x", Resource: "x", Signature: sig, Expiry: time.Unix(0, 0)}},
		{"unknown field ignored", "SharedAccessSignature sr=x&sig=" + sig64 + "&se=100&foo=bar",
			&SAS{RawResource: "x", Resource: "x", Signature: sig, Expiry: time.Unix(100, 0)}},
		{"dps vector", dpsToken, &SAS{
			RawResource: "0ne00000a0a%2Fregistrations%2F" + dpsRegistrationID,
			Resource:    "0ne00000a0a/registrations/" + dpsRegistrationID,
			Signature:   mustBase64(t, "d406MgvRehEpDFzZ+PGPWcCB7jkUcyicJxto+WNugHg="),
			Expiry:      time.Unix(dpsExpiry, 0),
			KeyName:     "registration",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSAS(tt.header)
			if err != nil {
				t.Fatalf("ParseSAS: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseSAS mismatch (-want +got):\n%s", diff)
			}
			again, err := ParseSAS(got.String())
			if err != nil {
				t.Fatalf("ParseSAS(String()): %v", err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("round trip mismatch (-first +second):\n%s", diff)
			}
		})
	}
}

func TestParseSASRefuses(t *testing.T) {
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(make([]byte, 32)))
	short := url.QueryEscape(base64.StdEncoding.EncodeToString(make([]byte, 31)))
	tests := []struct{ name, header string }{
		{"empty", ""},
		{"no prefix", "sr=x&sig=" + sig + "&se=1"},
		{"prefix glued", "SharedAccessSignaturesr=x&sig=" + sig + "&se=1"},
		{"other scheme", "Bearer sr=x&sig=" + sig + "&se=1"},
		{"prefix only", "SharedAccessSignature "},
		{"no sr", "SharedAccessSignature sig=" + sig + "&se=1"},
		{"no sig", "SharedAccessSignature sr=x&se=1"},
		{"no se", "SharedAccessSignature sr=x&sig=" + sig},
		{"empty sr", "SharedAccessSignature sr=&sig=" + sig + "&se=1"},
		{"duplicate sr", "SharedAccessSignature sr=x&sr=y&sig=" + sig + "&se=1"},
		{"duplicate sr, other case", "SharedAccessSignature sr=x&SR=x&sig=" + sig + "&se=1"},
		{"duplicate se", "SharedAccessSignature sr=x&sig=" + sig + "&se=1&se=2"},
		{"duplicate skn", "SharedAccessSignature sr=x&sig=" + sig + "&se=1&skn=a&skn=a"},
		{"duplicate unknown", "SharedAccessSignature sr=x&sig=" + sig + "&se=1&a=1&a=2"},
		{"empty part", "SharedAccessSignature sr=x&&sig=" + sig + "&se=1"},
		{"trailing &", "SharedAccessSignature sr=x&sig=" + sig + "&se=1&"},
		{"part without =", "SharedAccessSignature sr=x&sig=" + sig + "&se=1&skn"},
		{"bad escape in sr", "SharedAccessSignature sr=x%zz&sig=" + sig + "&se=1"},
		{"bad escape in skn", "SharedAccessSignature sr=x&sig=" + sig + "&se=1&skn=%"},
		{"short sig", "SharedAccessSignature sr=x&sig=" + short + "&se=1"},
		{"sig not base64", "SharedAccessSignature sr=x&sig=!!!!&se=1"},
		{"sig url-safe base64", "SharedAccessSignature sr=x&sig=" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)) + "&se=1"},
		{"negative se", "SharedAccessSignature sr=x&sig=" + sig + "&se=-1"},
		{"signed se", "SharedAccessSignature sr=x&sig=" + sig + "&se=+1"},
		{"leading zero se", "SharedAccessSignature sr=x&sig=" + sig + "&se=01"},
		{"fractional se", "SharedAccessSignature sr=x&sig=" + sig + "&se=1.5"},
		{"huge se", "SharedAccessSignature sr=x&sig=" + sig + "&se=99999999999999999999"},
		{"overflowing se", "SharedAccessSignature sr=x&sig=" + sig + "&se=9999999999999999999"},
		{"after year 9999", "SharedAccessSignature sr=x&sig=" + sig + "&se=253402300800"},
		{"max int64 se", "SharedAccessSignature sr=x&sig=" + sig + "&se=9223372036854775807"},
		{"too many fields", "SharedAccessSignature sr=x&sig=" + sig + "&se=1&a=1&b=1&c=1&d=1&e=1&f=1"},
		{"too long", "SharedAccessSignature sr=" + strings.Repeat("x", MaxSASLength) + "&sig=" + sig + "&se=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSAS(tt.header)
			if err == nil {
				t.Fatalf("ParseSAS accepted it: %+v", s)
			}
			checkDeviceFacing(t, err, ReasonMalformed)
		})
	}
}

// checkDeviceFacing checks that err is an attestation failure with the
// given reason whose public message says nothing more.
func checkDeviceFacing(t *testing.T, err error, reason string) {
	t.Helper()
	if got := Reason(err); got != reason {
		t.Errorf("Reason: got %q, want %q (err %v)", got, reason, err)
	}
	if got := gatehouse.ErrorCode(err); got != gatehouse.EAttestationFailed {
		t.Errorf("ErrorCode: got %q, want %q", got, gatehouse.EAttestationFailed)
	}
	if got := gatehouse.ErrorMessage(err); got != "attestation failed" {
		t.Errorf("ErrorMessage: got %q, want %q", got, "attestation failed")
	}
	var ge *gatehouse.Error
	if !errors.As(err, &ge) {
		t.Errorf("no *gatehouse.Error in %v", err)
	}
}

func TestVerifyDPSVector(t *testing.T) {
	s, err := ParseSAS(dpsToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(mustBase64(t, dpsDeviceKey), testNow, 0); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := s.CheckResource(dpsScope, dpsRegistrationID); err != nil {
		t.Errorf("CheckResource: %v", err)
	}
	// NewSAS writes the same token as the C SDK, bar skn.
	if got, want := NewSAS(mustBase64(t, dpsDeviceKey), dpsScope+"/registrations/"+dpsRegistrationID, time.Unix(dpsExpiry, 0)), strings.TrimSuffix(dpsToken, "&skn=registration"); got != want {
		t.Errorf("NewSAS: got %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	other := []byte("fedcba9876543210fedcba9876543210")
	now := time.Unix(1_700_000_000, 0)
	se := "1700003600" // now + 1h
	tests := []struct {
		name        string
		token       string
		key         []byte
		now         time.Time
		maxLifetime time.Duration
		reason      string // "" for success
	}{
		{"NewSAS", NewSAS(key, "s/registrations/d", now.Add(time.Hour)), key, now, 0, ""},
		{"unencoded sr (Node SDK)", tokenFor(key, "s/registrations/d", se, "&skn=registration"), key, now, 0, ""},
		{"lower-case encoded sr", tokenFor(key, "s%2fregistrations%2fd", se, ""), key, now, 0, ""},
		{"upper-case resource", tokenFor(key, "S%2FRegistrations%2FD", se, ""), key, now, 0, ""},
		{"wrong key", NewSAS(key, "s/registrations/d", now.Add(time.Hour)), other, now, 0, ReasonBadSignature},
		{"empty key", tokenFor(nil, "s/registrations/d", se, ""), nil, now, 0, ReasonBadSignature},
		{"expired", NewSAS(key, "s/registrations/d", now.Add(-time.Second)), key, now, 0, ReasonExpired},
		{"expires now", NewSAS(key, "s/registrations/d", now), key, now, 0, ReasonExpired},
		{"expires within the second", NewSAS(key, "s/registrations/d", now), key, now.Add(500 * time.Millisecond), 0, ReasonExpired},
		{"one second left", NewSAS(key, "s/registrations/d", now.Add(time.Second)), key, now, 0, ""},
		{"at max lifetime", NewSAS(key, "s/registrations/d", now.Add(time.Hour)), key, now, time.Hour, ""},
		{"beyond max lifetime", NewSAS(key, "s/registrations/d", now.Add(time.Hour+time.Second)), key, now, time.Hour, ReasonLifetime},
		{"beyond default lifetime", NewSAS(key, "s/registrations/d", now.Add(DefaultMaxLifetime+time.Second)), key, now, 0, ReasonLifetime},
		{"year 9999", tokenFor(key, "s/registrations/d", "253402300799", ""), key, now, 0, ReasonLifetime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSAS(tt.token)
			if err != nil {
				t.Fatalf("ParseSAS(%q): %v", tt.token, err)
			}
			err = s.Verify(tt.key, tt.now, tt.maxLifetime)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if err := s.CheckResource("s", "d"); err != nil {
					t.Errorf("CheckResource: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Verify accepted it")
			}
			checkDeviceFacing(t, err, tt.reason)
		})
	}
}

// The signature covers sr as sent: re-encoding it, even to the same
// decoded resource, breaks it.
func TestVerifySignsRawResource(t *testing.T) {
	key := []byte("k")
	now := time.Unix(1_700_000_000, 0)
	s, err := ParseSAS(NewSAS(key, "s/registrations/d", now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	s.RawResource = "s/registrations/d"
	checkDeviceFacing(t, s.Verify(key, now, 0), ReasonBadSignature)
}

func TestVerifySASWithKeys(t *testing.T) {
	primary, secondary := []byte("primary-key"), []byte("secondary-key")
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name   string
		signer []byte
		keys   [][]byte
		expiry time.Time
		want   int
		reason string
	}{
		{"primary", primary, [][]byte{primary, secondary}, now.Add(time.Hour), 0, ""},
		{"secondary", secondary, [][]byte{primary, secondary}, now.Add(time.Hour), 1, ""},
		{"no secondary", primary, [][]byte{primary, nil}, now.Add(time.Hour), 0, ""},
		{"same key twice", primary, [][]byte{primary, primary}, now.Add(time.Hour), 0, ""},
		{"neither", []byte("other"), [][]byte{primary, secondary}, now.Add(time.Hour), -1, ReasonBadSignature},
		{"no keys", primary, nil, now.Add(time.Hour), -1, ReasonBadSignature},
		{"empty keys", nil, [][]byte{nil, {}}, now.Add(time.Hour), -1, ReasonBadSignature},
		{"expired", secondary, [][]byte{primary, secondary}, now, -1, ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSAS(NewSAS(tt.signer, "s/registrations/d", tt.expiry))
			if err != nil {
				t.Fatal(err)
			}
			got, err := VerifySASWithKeys(s, tt.keys, now, 0)
			if got != tt.want {
				t.Errorf("index: got %d, want %d", got, tt.want)
			}
			if tt.reason == "" {
				if err != nil {
					t.Errorf("VerifySASWithKeys: %v", err)
				}
				return
			}
			checkDeviceFacing(t, err, tt.reason)
		})
	}
}

func TestCheckResource(t *testing.T) {
	tests := []struct {
		resource  string
		scope, id string
		devices   bool
		ok        bool
	}{
		{"default/registrations/dev-1", "default", "dev-1", false, true},
		{"DEFAULT/Registrations/DEV-1", "default", "dev-1", false, true},
		{"default%2Fregistrations%2Fdev-1", "default", "dev-1", false, true},
		{"default%2fregistrations%2fdev-1", "default", "dev-1", false, true},
		{"default/registrations/dev-1", "other", "dev-1", false, false},
		{"default/registrations/dev-1", "default", "dev-2", false, false},
		{"default/registrations/dev-1x", "default", "dev-1", false, false},
		{"default/registrations/dev-1/x", "default", "dev-1", false, false},
		{"default/registrations/dev", "default", "dev-1", false, false},
		{"default/devices/dev-1", "default", "dev-1", false, false},
		{"default/registrations/", "default", "", false, false},
		{"/registrations/dev-1", "", "dev-1", false, false},
		{"default/registrations/de\u212a", "default", "dek", false, false}, // Kelvin sign
		{"default/devices/dev-1", "default", "dev-1", true, true},
		{"default%2FDEVICES%2Fdev-1", "default", "dev-1", true, true},
		{"default/registrations/dev-1", "default", "dev-1", true, false},
		{"default/devices/dev-1/modules/m", "default", "dev-1", true, false},
	}
	for _, tt := range tests {
		s, err := ParseSAS(NewSAS([]byte("k"), "x", time.Unix(1, 0)))
		if err != nil {
			t.Fatal(err)
		}
		s.RawResource = tt.resource
		if s.Resource, err = url.PathUnescape(tt.resource); err != nil {
			t.Fatal(err)
		}
		check := s.CheckResource
		if tt.devices {
			check = s.CheckDeviceResource
		}
		err = check(tt.scope, tt.id)
		if tt.ok && err != nil {
			t.Errorf("%q for (%q, %q): %v", tt.resource, tt.scope, tt.id, err)
		} else if !tt.ok {
			if err == nil {
				t.Errorf("%q for (%q, %q): accepted", tt.resource, tt.scope, tt.id)
			} else {
				checkDeviceFacing(t, err, ReasonWrongResource)
			}
		}
	}
}

func TestReason(t *testing.T) {
	if got := Reason(nil); got != "" {
		t.Errorf("Reason(nil): got %q, want \"\"", got)
	}
	if got := Reason(errors.New("x")); got != "" {
		t.Errorf("Reason(other): got %q, want \"\"", got)
	}
	_, err := ParseSAS("x")
	wrapped := errors.Join(errors.New("register"), err)
	if got := Reason(wrapped); got != ReasonMalformed {
		t.Errorf("Reason(wrapped): got %q, want %q", got, ReasonMalformed)
	}
	// The log line says why; the device message does not.
	if !strings.Contains(err.Error(), ReasonMalformed) {
		t.Errorf("Error() = %q does not name the reason", err.Error())
	}
}

func FuzzParseSAS(f *testing.F) {
	key := []byte("fuzz-key")
	f.Add(dpsToken)
	f.Add(NewSAS(key, "s/registrations/d", time.Unix(1_700_000_000, 0)))
	f.Add(tokenFor(key, "s/registrations/d", "1700000000", "&skn=registration"))
	f.Add("SharedAccessSignature se=1&sr=a%2Fb&skn=x%20y&sig=" + strings.Repeat("A", 43) + "=")
	f.Add("sharedaccesssignature sr=&sig=&se=")
	f.Add("SharedAccessSignature sr=x&sr=x")
	f.Fuzz(func(t *testing.T, header string) {
		s, err := ParseSAS(header)
		if err != nil {
			if s != nil {
				t.Fatal("non-nil SAS with an error")
			}
			if Reason(err) != ReasonMalformed || gatehouse.ErrorMessage(err) != "attestation failed" {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(s.Signature) != 32 {
			t.Fatalf("signature of %d bytes", len(s.Signature))
		}
		again, err := ParseSAS(s.String())
		if err != nil {
			t.Fatalf("ParseSAS(%q): %v", s.String(), err)
		}
		if diff := cmp.Diff(s, again); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
		// Whatever the token says, these must not panic, and the key
		// did not sign it unless the fuzzer found an HMAC collision.
		_ = s.Verify(key, time.Unix(0, 0), 0)
		_, _ = VerifySASWithKeys(s, [][]byte{key, nil}, time.Unix(0, 0), 0)
		_ = s.CheckResource("s", "d")
		_ = s.CheckDeviceResource("s", "d")
	})
}

func BenchmarkParseSAS(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSAS(dpsToken); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifySAS is the whole per-request cost for a symmetric-key
// group: parse, derive the device key, verify, check the resource.
func BenchmarkVerifySAS(b *testing.B) {
	group := mustBase64(b, dpsGroupKey)
	b.ReportAllocs()
	for b.Loop() {
		s, err := ParseSAS(dpsToken)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Verify(DeriveDeviceKey(group, dpsRegistrationID), testNow, 0); err != nil {
			b.Fatal(err)
		}
		if err := s.CheckResource(dpsScope, dpsRegistrationID); err != nil {
			b.Fatal(err)
		}
	}
}
