package gatehouse

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestMergePatchRFC7386 runs the examples of RFC 7386, appendix A.
func TestMergePatchRFC7386(t *testing.T) {
	tests := []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{``, `{"n":12345678901234567890}`, `{"n":12345678901234567890}`},
	}
	for _, tt := range tests {
		got, err := MergePatch(json.RawMessage(tt.target), json.RawMessage(tt.patch))
		if err != nil {
			t.Errorf("MergePatch(%s, %s): %v", tt.target, tt.patch, err)
			continue
		}
		if !jsonEqual(t, string(got), tt.want) {
			t.Errorf("MergePatch(%s, %s) = %s, want %s", tt.target, tt.patch, got, tt.want)
		}
	}
	if _, err := MergePatch(json.RawMessage(`{}`), json.RawMessage(`{"a":`)); ErrorCode(err) != EInvalidJSON {
		t.Errorf("bad patch: got %v, want %s", err, EInvalidJSON)
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func TestDevicePatch(t *testing.T) {
	base := func() *Device {
		return &Device{Tags: map[string]string{"site": "north", "fw": "1"}, Config: json.RawMessage(`{"rate":5,"mode":"a"}`)}
	}
	tests := []struct {
		name, body string
		wantTags   string
		wantConfig string
		code       string
	}{
		{"replace tag", `{"tags":{"site":"south"}}`, `{"fw":"1","site":"south"}`, `{"mode":"a","rate":5}`, ""},
		{"delete tag", `{"tags":{"fw":null}}`, `{"site":"north"}`, `{"mode":"a","rate":5}`, ""},
		{"clear tags", `{"tags":null}`, `{}`, `{"mode":"a","rate":5}`, ""},
		{"merge config", `{"config":{"rate":null,"x":{"y":1}}}`, `{"fw":"1","site":"north"}`, `{"mode":"a","x":{"y":1}}`, ""},
		{"unknown field", `{"state":"active"}`, "", "", EUnknownField},
		{"tag not string", `{"tags":{"a":1}}`, "", "", EInvalid},
		{"bad tag key", `{"tags":{"a b":"x"}}`, "", "", EInvalid},
		{"config not object", `{"config":[1]}`, "", "", EInvalid},
		{"config too large", `{"config":{"a":"` + strings.Repeat("x", MaxConfigBytes) + `"}}`, "", "", ETooLarge},
		{"malformed", `{"tags":`, "", "", EInvalidJSON},
		{"empty", ``, "", "", EInvalidJSON},
		{"trailing", `{} {}`, "", "", EInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := base()
			p, err := ParseDevicePatch([]byte(tt.body))
			if err == nil {
				err = p.Apply(d)
			}
			if tt.code != "" {
				if ErrorCode(err) != tt.code {
					t.Fatalf("got %v, want code %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tags, _ := json.Marshal(d.Tags)
			if !jsonEqual(t, string(tags), tt.wantTags) {
				t.Errorf("tags = %s, want %s", tags, tt.wantTags)
			}
			if !jsonEqual(t, string(d.Config), tt.wantConfig) {
				t.Errorf("config = %s, want %s", d.Config, tt.wantConfig)
			}
		})
	}
}

func FuzzMergePatch(f *testing.F) {
	f.Add(`{"a":1}`, `{"a":null,"b":{"c":[1]}}`)
	f.Add(`[]`, `"x"`)
	f.Fuzz(func(t *testing.T, target, patch string) {
		if !json.Valid([]byte(target)) {
			target = ""
		}
		out, err := MergePatch(json.RawMessage(target), json.RawMessage(patch))
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid output %s", out)
		}
		// Applying the same patch twice is idempotent.
		again, err := MergePatch(out, json.RawMessage(patch))
		if err != nil || !jsonEqual(t, string(out), string(again)) {
			t.Fatalf("not idempotent: %s then %s (%v)", out, again, err)
		}
	})
}

func FuzzParseDevicePatch(f *testing.F) {
	f.Add(`{"tags":{"a":"b"},"config":{"x":1}}`)
	f.Add(`{"tags":null}`)
	f.Fuzz(func(t *testing.T, body string) {
		p, err := ParseDevicePatch([]byte(body))
		if err != nil {
			return
		}
		d := &Device{Tags: map[string]string{}, Config: json.RawMessage(`{}`)}
		if err := p.Apply(d); err != nil {
			return
		}
		if err := ValidateTags(d.Tags); err != nil {
			t.Fatalf("patched tags invalid: %v", err)
		}
		if err := ValidateJSONObject("config", d.Config, MaxConfigBytes); err != nil {
			t.Fatalf("patched config invalid: %v", err)
		}
	})
}
