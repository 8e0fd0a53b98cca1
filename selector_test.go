package gatehouse

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseTagSelector(t *testing.T) {
	tests := []struct {
		in   string
		want TagSelector
		err  bool
	}{
		{in: "site=north", want: TagSelector{Key: "site", Op: SelEq, Values: []string{"north"}}},
		{in: "site = north", want: TagSelector{Key: "site", Op: SelEq, Values: []string{"north"}}},
		{in: "site=", want: TagSelector{Key: "site", Op: SelEq, Values: []string{""}}},
		{in: "site=a=b", want: TagSelector{Key: "site", Op: SelEq, Values: []string{"a=b"}}},
		{in: "site!=north", want: TagSelector{Key: "site", Op: SelNotEq, Values: []string{"north"}}},
		{in: "site in (a, b,c)", want: TagSelector{Key: "site", Op: SelIn, Values: []string{"a", "b", "c"}}},
		{in: "site notin (a)", want: TagSelector{Key: "site", Op: SelNotIn, Values: []string{"a"}}},
		{in: "fw.version", want: TagSelector{Key: "fw.version", Op: SelExists}},
		{in: "!site", want: TagSelector{Key: "site", Op: SelNotExists}},
		{in: "", err: true},
		{in: "=v", err: true},
		{in: "bad key=v", err: true},
		{in: "site in a,b", err: true},
		{in: "site in ()", err: true},
		{in: "site in (a,,b)", err: true},
		{in: "si(te", err: true},
		{in: "site=\x01", err: true},
	}
	for _, tt := range tests {
		got, err := ParseTagSelector(tt.in)
		if tt.err {
			if err == nil || ErrorCode(err) != EInvalidSelector {
				t.Errorf("ParseTagSelector(%q) = %+v, %v; want %s error", tt.in, got, err, EInvalidSelector)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTagSelector(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseTagSelector(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestTagSelectorMatch(t *testing.T) {
	tags := map[string]string{"site": "north", "fw": "1.2"}
	tests := []struct {
		sel  string
		want bool
	}{
		{"site=north", true}, {"site=south", false}, {"site!=south", true}, {"site!=north", false},
		{"zone!=x", true}, {"site in (south,north)", true}, {"site in (south)", false},
		{"site notin (south)", true}, {"zone notin (a)", true}, {"fw", true}, {"zone", false},
		{"!zone", true}, {"!site", false},
	}
	for _, tt := range tests {
		s, err := ParseTagSelector(tt.sel)
		if err != nil {
			t.Fatalf("parse %q: %v", tt.sel, err)
		}
		if got := s.Match(tags); got != tt.want {
			t.Errorf("%q.Match = %v, want %v", tt.sel, got, tt.want)
		}
	}
}

func FuzzParseTagSelector(f *testing.F) {
	for _, s := range []string{"site=north", "a!=b", "k in (a,b)", "k notin (x)", "!k", "k", "((", "=", "k in (a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseTagSelector(s)
		if err != nil {
			if ErrorCode(err) != EInvalidSelector {
				t.Fatalf("code %q", ErrorCode(err))
			}
			return
		}
		if ValidateTagKey(sel.Key) != nil {
			t.Fatalf("accepted invalid key %q", sel.Key)
		}
		switch sel.Op {
		case SelEq, SelNotEq:
			if len(sel.Values) != 1 {
				t.Fatalf("%s with %d values", sel.Op, len(sel.Values))
			}
		case SelIn, SelNotIn:
			if len(sel.Values) == 0 {
				t.Fatal("empty list accepted")
			}
		}
		sel.Match(map[string]string{sel.Key: "x"})
	})
}
