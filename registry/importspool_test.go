package registry

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"
)

func TestSpoolRoundTrip(t *testing.T) {
	key := make([]byte, spoolKeySize)
	rand.Read(key)
	for _, size := range []int{0, 1, spoolChunk - 1, spoolChunk, spoolChunk + 1, 3*spoolChunk + 17} {
		plain := make([]byte, size)
		rand.Read(plain)
		var file bytes.Buffer
		w, err := newSpoolWriter(&file, key)
		if err != nil {
			t.Fatal(err)
		}
		// Odd write sizes, to cross chunk boundaries.
		for p := plain; len(p) > 0; {
			k := min(len(p), 1000+len(p)%7919)
			if _, err := w.Write(p[:k]); err != nil {
				t.Fatal(err)
			}
			p = p[k:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if size >= 16 && bytes.Contains(file.Bytes(), plain[:16]) {
			t.Errorf("size %d: the spool holds plaintext", size)
		}
		r, _ := newSpoolReader(bytes.NewReader(file.Bytes()), key)
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("size %d: read back %d bytes (err %v), want %d equal bytes", size, len(got), err, size)
		}

		// Cut at a chunk boundary: the last chunk is missing.
		if size > spoolChunk {
			r, _ := newSpoolReader(bytes.NewReader(file.Bytes()[:spoolChunk+spoolOverhead]), key)
			if _, err := io.ReadAll(r); err != errSpoolDamaged {
				t.Errorf("size %d cut after one chunk: got %v, want errSpoolDamaged", size, err)
			}
		}
		// Another key.
		other := make([]byte, spoolKeySize)
		rand.Read(other)
		r, _ = newSpoolReader(bytes.NewReader(file.Bytes()), other)
		if _, err := io.ReadAll(r); err != errSpoolDamaged {
			t.Errorf("size %d with another key: got %v, want errSpoolDamaged", size, err)
		}
		// One bit flipped.
		if file.Len() > 0 {
			b := bytes.Clone(file.Bytes())
			b[len(b)/2] ^= 1
			r, _ = newSpoolReader(bytes.NewReader(b), key)
			if _, err := io.ReadAll(r); err != errSpoolDamaged {
				t.Errorf("size %d with a flipped bit: got %v, want errSpoolDamaged", size, err)
			}
		}
	}
}
