package gatehouse

import (
	"strings"
	"testing"
)

func TestTokenRoundTrip(t *testing.T) {
	tok, id := NewTokenSecret()
	if !strings.HasPrefix(tok, "gh_"+id+"_") {
		t.Fatalf("token %q does not embed id %q", "gh_...", id)
	}
	gotID, hash, err := ParseToken(tok)
	if err != nil || gotID != id {
		t.Fatalf("ParseToken: got %q, %v; want %q", gotID, err, id)
	}
	stored := &Token{ID: id, Hash: HashToken(tok)}
	if !stored.Matches(hash) {
		t.Error("token does not match its own hash")
	}
	other, _ := NewTokenSecret()
	if stored.Matches(HashToken(other)) {
		t.Error("another token matches")
	}
	for _, bad := range []string{"", "gh_", "gh_short_x", "Bearer x", "gh_" + id} {
		if _, _, err := ParseToken(bad); ErrorCode(err) != EUnauthenticated {
			t.Errorf("ParseToken(%q) = %v, want %s", bad, err, EUnauthenticated)
		}
	}
}

func TestPrincipalAuthorize(t *testing.T) {
	tests := []struct {
		p     Principal
		scope string
		need  Role
		code  string
	}{
		{Principal{Scope: GlobalScope, Role: RoleAdmin}, "acme", RoleAdmin, ""},
		{Principal{Scope: "acme", Role: RoleAdmin}, "acme", RoleAdmin, ""},
		{Principal{Scope: "acme", Role: RoleAdmin}, "other", RoleViewer, ENotFound},
		{Principal{Scope: "acme", Role: RoleOperator}, "acme", RoleOperator, ""},
		{Principal{Scope: "acme", Role: RoleOperator}, "acme", RoleAdmin, EForbidden},
		{Principal{Scope: "acme", Role: RoleViewer}, "acme", RoleViewer, ""},
		{Principal{Scope: "acme", Role: RoleViewer}, "acme", RoleOperator, EForbidden},
	}
	for _, tt := range tests {
		if got := ErrorCode(tt.p.Authorize(tt.scope, tt.need)); got != tt.code {
			t.Errorf("%+v.Authorize(%s, %s) = %q, want %q", tt.p, tt.scope, tt.need, got, tt.code)
		}
	}
	var nilP *Principal
	if got := ErrorCode(nilP.Authorize("acme", RoleViewer)); got != EUnauthenticated {
		t.Errorf("nil principal: got %q", got)
	}
}
