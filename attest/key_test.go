package attest

import (
	"encoding/base64"
	"testing"
)

// The public DPS test vector (PROTOCOLS.md).
const (
	dpsGroupKey       = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
	dpsRegistrationID = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
	dpsDeviceKey      = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
)

func mustBase64(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestDeriveDeviceKey(t *testing.T) {
	group := mustBase64(t, dpsGroupKey)
	tests := []struct {
		name, registrationID, want string
	}{
		{"dps vector", dpsRegistrationID, dpsDeviceKey},
		// Computed with Python's hmac module.
		{"other id", "dev-1", "p1YFPLQZuL5qaxFVrb3Uz4y0hleay+ET6RiT5xj6Jsw="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := base64.StdEncoding.EncodeToString(DeriveDeviceKey(group, tt.registrationID))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func BenchmarkDeriveKey(b *testing.B) {
	group := mustBase64(b, dpsGroupKey)
	b.ReportAllocs()
	for b.Loop() {
		DeriveDeviceKey(group, dpsRegistrationID)
	}
}
