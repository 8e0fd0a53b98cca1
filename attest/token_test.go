package attest

import (
	"encoding/base64"
	"testing"
)

func TestToken(t *testing.T) {
	tok := NewToken()
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) != 32 {
		t.Fatalf("NewToken() = %q: want base64url of 32 bytes (%v)", tok, err)
	}
	if NewToken() == tok {
		t.Fatal("two tokens are equal")
	}
	stored := HashToken(tok)
	tests := []struct {
		name      string
		stored    []byte
		presented string
		want      bool
	}{
		{"match", stored, tok, true},
		{"other token", stored, NewToken(), false},
		{"prefix", stored, tok[:42], false},
		{"empty presented", stored, "", false},
		{"empty stored", nil, tok, false},
		{"empty stored and presented", nil, "", false},
		{"truncated stored", stored[:16], tok, false},
	}
	for _, tt := range tests {
		if got := TokenMatches(tt.stored, tt.presented); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
