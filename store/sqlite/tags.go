package sqlite

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// decodeTags decodes a device's tags column. The column is what
// encodeTags wrote: json.Marshal of a map[string]string, compact, keys
// sorted. Listing a page decodes one per device, so the common form (no
// escapes, valid UTF-8) is read directly, without encoding/json's
// reflection; anything else goes to json.Unmarshal, whose result is the
// reference either way.
func decodeTags(b []byte) (map[string]string, error) {
	if m, ok := decodePlainTags(b); ok {
		return m, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]string{}
	}
	return m, nil
}

// decodePlainTags reads {"k":"v",...} with no whitespace and no escapes,
// and reports false for anything else.
func decodePlainTags(b []byte) (map[string]string, bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' || bytes.IndexByte(b, '\\') >= 0 || !utf8.Valid(b) {
		return nil, false
	}
	m := make(map[string]string, bytes.Count(b, []byte{':'}))
	rest := b[1 : len(b)-1]
	if len(rest) == 0 {
		return m, true
	}
	for {
		k, r, ok := plainString(rest)
		if !ok || len(r) == 0 || r[0] != ':' {
			return nil, false
		}
		v, r, ok := plainString(r[1:])
		if !ok {
			return nil, false
		}
		m[k] = v
		if len(r) == 0 {
			return m, true
		}
		if r[0] != ',' {
			return nil, false
		}
		rest = r[1:]
	}
}

// plainString reads a JSON string without escapes at the start of b; the
// control characters JSON forbids in a string make it report false.
func plainString(b []byte) (s string, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, false
	}
	end := bytes.IndexByte(b[1:], '"')
	if end < 0 {
		return "", nil, false
	}
	for _, c := range b[1 : 1+end] {
		if c < 0x20 {
			return "", nil, false
		}
	}
	return string(b[1 : 1+end]), b[end+2:], true
}
