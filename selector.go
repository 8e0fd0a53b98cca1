package gatehouse

import (
	"strings"
)

// SelectorOp is the operator of a tag selector.
type SelectorOp string

const (
	SelEq        SelectorOp = "="      // k=v
	SelNotEq     SelectorOp = "!="     // k!=v (also matches devices without k)
	SelIn        SelectorOp = "in"     // k in (a,b)
	SelNotIn     SelectorOp = "notin"  // k notin (a,b)
	SelExists    SelectorOp = "exists" // k
	SelNotExists SelectorOp = "!"      // !k
)

// TagSelector is one condition on a device's tags.
type TagSelector struct {
	Key    string
	Op     SelectorOp
	Values []string
}

// MaxSelectors bounds how many tag selectors one query may carry.
const MaxSelectors = 16

// ParseTagSelector parses one selector: "k=v", "k!=v", "k in (a,b)",
// "k notin (a,b)", "k" (exists) or "!k" (does not exist).
func ParseTagSelector(s string) (TagSelector, error) {
	bad := func(why string) (TagSelector, error) {
		return TagSelector{}, Errorf(EInvalidSelector, "tag selector %q: %s; use k=v, k!=v, 'k in (a,b)', 'k notin (a,b)', k or !k", truncate(s, 64), why)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return bad("empty")
	}
	if len(s) > 2048 {
		return bad("too long")
	}
	if rest, ok := strings.CutPrefix(s, "!"); ok && !strings.ContainsAny(rest, "=!() ,") {
		if ValidateTagKey(rest) != nil {
			return bad("invalid key")
		}
		return TagSelector{Key: rest, Op: SelNotExists}, nil
	}
	if i := strings.Index(s, "!="); i >= 0 {
		return selKV(s[:i], SelNotEq, s[i+2:], bad)
	}
	if i := strings.IndexByte(s, '='); i >= 0 {
		return selKV(s[:i], SelEq, s[i+1:], bad)
	}
	if key, list, ok := cutWord(s, "notin"); ok {
		return selList(key, SelNotIn, list, bad)
	}
	if key, list, ok := cutWord(s, "in"); ok {
		return selList(key, SelIn, list, bad)
	}
	if ValidateTagKey(s) != nil {
		return bad("invalid key")
	}
	return TagSelector{Key: s, Op: SelExists}, nil
}

func selKV(k string, op SelectorOp, v string, bad func(string) (TagSelector, error)) (TagSelector, error) {
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if ValidateTagKey(k) != nil {
		return bad("invalid key")
	}
	if err := validateSelectorValue(v); err != nil {
		return bad(err.Error())
	}
	return TagSelector{Key: k, Op: op, Values: []string{v}}, nil
}

// cutWord splits "key word (list)" around the word.
func cutWord(s, word string) (key, list string, ok bool) {
	i := strings.Index(s, " "+word+" ")
	if i < 0 {
		i = strings.Index(s, " "+word+"(")
		if i < 0 {
			return "", "", false
		}
	}
	return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1+len(word):]), true
}

func selList(key string, op SelectorOp, list string, bad func(string) (TagSelector, error)) (TagSelector, error) {
	if ValidateTagKey(key) != nil {
		return bad("invalid key")
	}
	if !strings.HasPrefix(list, "(") || !strings.HasSuffix(list, ")") {
		return bad("the value list must be in parentheses")
	}
	parts := strings.Split(list[1:len(list)-1], ",")
	if len(parts) > 100 {
		return bad("more than 100 values")
	}
	sel := TagSelector{Key: key, Op: op}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return bad("empty value in list")
		}
		if err := validateSelectorValue(p); err != nil {
			return bad(err.Error())
		}
		sel.Values = append(sel.Values, p)
	}
	return sel, nil
}

func validateSelectorValue(v string) error {
	if len(v) > MaxTagValueLen {
		return Errorf(EInvalidSelector, "value longer than %d bytes", MaxTagValueLen)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return Errorf(EInvalidSelector, "control or invalid character in value")
		}
	}
	return nil
}

// Match reports whether tags satisfy the selector. Stores implement the same
// semantics in SQL; this is the reference the conformance suite checks them by.
func (s TagSelector) Match(tags map[string]string) bool {
	v, ok := tags[s.Key]
	switch s.Op {
	case SelEq:
		return ok && v == s.Values[0]
	case SelNotEq:
		return !ok || v != s.Values[0]
	case SelIn:
		return ok && containsString(s.Values, v)
	case SelNotIn:
		return !ok || !containsString(s.Values, v)
	case SelExists:
		return ok
	case SelNotExists:
		return !ok
	}
	return false
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
