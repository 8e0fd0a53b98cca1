package secret

import (
	"fmt"
	"io"
	"log/slog"
)

// Redacted is what a Bytes value prints as.
const Redacted = "[redacted]"

// Bytes holds a secret in memory. Printed with any fmt verb, logged through
// slog or marshaled to JSON or text, it shows only "[redacted]". Code that
// needs the value calls Reveal, which stands out in review.
//
// The value sits behind a pointer rather than in a []byte so that a Bytes in
// an unexported struct field, where fmt cannot call its methods, prints as a
// pointer address instead of the secret. The zero Bytes is empty.
type Bytes struct {
	p *[]byte
}

// NewBytes returns a Bytes holding b. It takes ownership of b: the caller
// must not use b afterwards, since Wipe clears it.
func NewBytes(b []byte) Bytes { return Bytes{p: &b} }

// Reveal returns the secret. The result aliases b; do not keep it longer
// than needed.
func (b Bytes) Reveal() []byte {
	if b.p == nil {
		return nil
	}
	return *b.p
}

// Len returns the length of the secret, which is not itself secret.
func (b Bytes) Len() int { return len(b.Reveal()) }

// Wipe overwrites the secret with zeros. Go may have copied the bytes
// elsewhere (a garbage-collected earlier buffer, say), so this narrows the
// time a secret sits in memory rather than guaranteeing it is gone.
func (b Bytes) Wipe() { clear(b.Reveal()) }

// String returns "[redacted]".
func (Bytes) String() string { return Redacted }

// GoString returns "[redacted]", for %#v.
func (Bytes) GoString() string { return Redacted }

// Format writes "[redacted]" for every verb, %x and %q included.
func (Bytes) Format(f fmt.State, _ rune) { io.WriteString(f, Redacted) }

// LogValue implements slog.LogValuer.
func (Bytes) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON returns "[redacted]": a secret is sealed, never serialized.
func (Bytes) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText returns "[redacted]".
func (Bytes) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
