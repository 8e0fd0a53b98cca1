package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestBytesRedacted(t *testing.T) {
	const raw = "hunter2-s3cr3t"
	b := NewBytes([]byte(raw))
	type holder struct {
		Exported   Bytes
		unexported Bytes
	}
	h := holder{Exported: b, unexported: b}
	hexRaw := fmt.Sprintf("%x", raw)

	tests := []struct {
		name string
		got  string
	}{
		{"String", b.String()},
		{"%v", fmt.Sprintf("%v", b)},
		{"%s", fmt.Sprintf("%s", b)},
		{"%q", fmt.Sprintf("%q", b)},
		{"%x", fmt.Sprintf("%x", b)},
		{"%X", fmt.Sprintf("%X", b)},
		{"%d", fmt.Sprintf("%d", b)},
		{"%#v", fmt.Sprintf("%#v", b)},
		{"%+v", fmt.Sprintf("%+v", b)},
		{"pointer %v", fmt.Sprintf("%v", &b)},
		{"struct %v", fmt.Sprintf("%v", h)},
		{"struct %+v", fmt.Sprintf("%+v", h)},
		{"struct %#v", fmt.Sprintf("%#v", h)},
		{"struct pointer %+v", fmt.Sprintf("%+v", &h)},
		{"slice %v", fmt.Sprintf("%v", []Bytes{b})},
		{"map %v", fmt.Sprintf("%v", map[string]Bytes{"k": b})},
		{"any %v", fmt.Sprint(any(b))},
		{"json", mustJSON(t, h)},
		{"slog text", logLine(t, false, slog.Any("secret", b), slog.Any("holder", h))},
		{"slog json", logLine(t, true, slog.Any("secret", b), slog.Any("holder", h))},
		{"slog text group", logLine(t, false, slog.Group("g", "secret", b))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.got, raw) || strings.Contains(strings.ToLower(tt.got), hexRaw) {
				t.Errorf("got %q, which contains the secret", tt.got)
			}
			if strings.Contains(tt.got, "104 117 110") { // "hun" as %v of []byte
				t.Errorf("got %q, which contains the secret's bytes", tt.got)
			}
		})
	}
	if got := fmt.Sprintf("%v", b); got != Redacted {
		t.Errorf("got %q, want %q", got, Redacted)
	}
	if got := string(b.Reveal()); got != raw {
		t.Errorf("Reveal() = %q, want %q", got, raw)
	}
}

func TestBytesWipe(t *testing.T) {
	b := NewBytes([]byte("abc"))
	b.Wipe()
	if got := b.Reveal(); !bytes.Equal(got, []byte{0, 0, 0}) {
		t.Errorf("after Wipe got %v, want zeros", got)
	}
	var zero Bytes
	zero.Wipe() // must not panic
	if zero.Len() != 0 || zero.Reveal() != nil {
		t.Errorf("zero Bytes: Len %d, Reveal %v", zero.Len(), zero.Reveal())
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func logLine(t *testing.T, asJSON bool, attrs ...slog.Attr) string {
	t.Helper()
	var buf bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if asJSON {
		h = slog.NewJSONHandler(&buf, nil)
	}
	slog.New(h).LogAttrs(t.Context(), slog.LevelInfo, "msg", attrs...)
	return buf.String()
}
