package gatehouse

import (
	"strings"
	"testing"
)

func TestValidateDeviceID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"dev-1", true}, {"a", true}, {"sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6", true}, {"x.y_z:1", true},
		{strings.Repeat("a", 128), true}, {strings.Repeat("a", 129), false},
		{"", false}, {"BAD ID!", false}, {"Dev", false}, {"a/b", false}, {"a b", false}, {"é", false}, {"a\x00", false},
	}
	for _, tt := range tests {
		err := ValidateDeviceID(tt.id)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateDeviceID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
		if err != nil && ErrorCode(err) != EInvalidID {
			t.Errorf("ValidateDeviceID(%q) code = %q, want %q", tt.id, ErrorCode(err), EInvalidID)
		}
	}
}

func TestValidateScopeID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"default", true}, {"acme-2", true}, {"a", true}, {strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false}, {"", false}, {"-a", false}, {"a-", false}, {"a.b", false},
		{"a:b", false}, {"a/b", false}, {"Acme", false}, {"*", false}, {"v1", false}, {"device", false},
	}
	for _, tt := range tests {
		if err := ValidateScopeID(tt.id); (err == nil) != tt.ok {
			t.Errorf("ValidateScopeID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func FuzzValidateDeviceID(f *testing.F) {
	for _, s := range []string{"dev-1", "BAD ID!", "", strings.Repeat("z", 200), "a:b.c_d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := ValidateDeviceID(id)
		if err == nil {
			if len(id) < 1 || len(id) > MaxDeviceIDLen {
				t.Fatalf("accepted id of length %d", len(id))
			}
			for i := 0; i < len(id); i++ {
				if !isDeviceIDByte(id[i]) {
					t.Fatalf("accepted %q with byte %q", id, id[i])
				}
			}
		} else if ErrorCode(err) != EInvalidID {
			t.Fatalf("code %q", ErrorCode(err))
		}
	})
}
