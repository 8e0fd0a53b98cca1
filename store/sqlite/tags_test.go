package sqlite

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeTags(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  map[string]string
		plain bool // read without encoding/json
	}{
		{`{}`, map[string]string{}, true},
		{`{"site":"site-7"}`, map[string]string{"site": "site-7"}, true},
		{`{"a":"","model":"m-1","site":"s"}`, map[string]string{"a": "", "model": "m-1", "site": "s"}, true},
		{`{"k":"ünï"}`, map[string]string{"k": "ünï"}, true},
		{`{"k":"a\"b"}`, map[string]string{"k": `a"b`}, false},
		{`{"k":"\u003c"}`, map[string]string{"k": "<"}, false},
		{`{ "k" : "v" }`, map[string]string{"k": "v"}, false},
		{`null`, map[string]string{}, false},
		{`{"k":"v","k":"w"}`, map[string]string{"k": "w"}, true},
	} {
		got, err := decodeTags([]byte(tc.in))
		if err != nil {
			t.Errorf("decodeTags(%s): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("decodeTags(%s) (-want +got):\n%s", tc.in, diff)
		}
		if _, plain := decodePlainTags([]byte(tc.in)); plain != tc.plain {
			t.Errorf("decodePlainTags(%s): plain %v, want %v", tc.in, plain, tc.plain)
		}
	}
	for _, in := range []string{`{"k":1}`, `{"k":"v"`, `{"k":"v",}`, `{"k"}`, `[]`, ``, "{\"k\":\"\x01\"}"} {
		if got, err := decodeTags([]byte(in)); err == nil {
			t.Errorf("decodeTags(%q) = %v, want an error", in, got)
		}
	}
}

// FuzzDecodeTags checks the direct reading against encoding/json: the same
// map, or both an error.
func FuzzDecodeTags(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"b","c":"d"}`, `{"k":"a\"b"}`, "{\"k\":\"\xff\"}", `{"k":"v",}`, `{"":""}`} {
		f.Add([]byte(s))
	}
	f.Add(mustJSON(f, map[string]string{"site": "<&>", "x": "\u2028", "e": ""}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want map[string]string
		werr := json.Unmarshal(b, &want)
		got, err := decodeTags(b)
		if (err != nil) != (werr != nil) {
			t.Fatalf("decodeTags(%q): error %v, encoding/json: %v", b, err, werr)
		}
		if err != nil {
			return
		}
		if want == nil {
			want = map[string]string{}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("decodeTags(%q) (-encoding/json +got):\n%s", b, diff)
		}
	})
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
