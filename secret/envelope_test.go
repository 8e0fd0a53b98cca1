package secret

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func newKey(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
}

// MustKeyring returns a Keyring with a fresh random primary key, and that key.
func MustKeyring(tb testing.TB) (*Keyring, []byte) {
	tb.Helper()
	key := newKey(tb)
	r, err := NewKeyring(key)
	if err != nil {
		tb.Fatal(err)
	}
	return r, key
}

func TestSealOpen(t *testing.T) {
	r, _ := MustKeyring(t)
	tests := []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{"empty", nil, []byte("rec")},
		{"no aad", []byte("hello"), nil},
		{"short", []byte("x"), []byte("installation-ca-key")},
		{"large", bytes.Repeat([]byte("ab"), 1<<16), []byte("big")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blob, err := r.Seal(tt.plaintext, tt.aad)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(blob), len(tt.plaintext)+Overhead; got != want {
				t.Errorf("len(blob) = %d, want %d", got, want)
			}
			if len(tt.plaintext) >= 8 && bytes.Contains(blob, tt.plaintext) {
				t.Error("blob contains the plaintext")
			}
			got, err := r.Open(blob, tt.aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Reveal(), tt.plaintext) {
				t.Errorf("Open returned %d bytes, want the %d sealed", got.Len(), len(tt.plaintext))
			}
		})
	}
}

func TestSealFreshEachTime(t *testing.T) {
	r, _ := MustKeyring(t)
	a, _ := r.Seal([]byte("same"), []byte("rec"))
	b, _ := r.Seal([]byte("same"), []byte("rec"))
	if bytes.Equal(a[offKeyID+keyIDSize:], b[offKeyID+keyIDSize:]) {
		t.Error("two seals of the same plaintext are identical past the key ID")
	}
}

func TestOpenErrors(t *testing.T) {
	r, key := MustKeyring(t)
	plaintext := []byte("the private key")
	aad := []byte("installation-ca-key")
	blob, err := r.Seal(plaintext, aad)
	if err != nil {
		t.Fatal(err)
	}
	other, otherKey := MustKeyring(t)

	flip := func(i int) []byte {
		b := bytes.Clone(blob)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name string
		ring *Keyring
		blob []byte
		aad  []byte
		want error
	}{
		{"wrong aad", r, blob, []byte("other-record"), ErrAuth},
		{"nil aad", r, blob, nil, ErrAuth},
		{"unknown key", other, blob, aad, ErrUnknownKey},
		{"empty", r, nil, aad, ErrMalformed},
		{"version 0", r, flip(0), aad, ErrMalformed},
		{"version 2", r, append([]byte{2}, blob[1:]...), aad, ErrMalformed},
		{"truncated header", r, blob[:headerSize], aad, ErrMalformed},
		{"truncated tag", r, blob[:len(blob)-1], aad, ErrAuth},
		{"key id flipped", r, flip(offKeyID), aad, ErrUnknownKey},
		{"wrap nonce flipped", r, flip(offWrapNonce), aad, ErrAuth},
		{"wrapped key flipped", r, flip(offWrappedKey + 3), aad, ErrAuth},
		{"data nonce flipped", r, flip(offDataNonce), aad, ErrAuth},
		{"ciphertext flipped", r, flip(headerSize), aad, ErrAuth},
		{"tag flipped", r, flip(len(blob) - 1), aad, ErrAuth},
		{"appended byte", r, append(bytes.Clone(blob), 0), aad, ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ring.Open(tt.blob, tt.aad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want %v", err, tt.want)
			}
			if got.Len() != 0 {
				t.Errorf("got %d bytes of plaintext alongside an error", got.Len())
			}
			msg := strings.ToLower(err.Error())
			for _, k := range [][]byte{key, otherKey, plaintext} {
				if strings.Contains(msg, hex.EncodeToString(k)) || strings.Contains(msg, string(k)) {
					t.Errorf("error %q contains key material or plaintext", err)
				}
			}
		})
	}
}

// A wrapped data key moved into another blob must not open it: the wrap binds
// the key ID, and the data layer binds the whole header.
func TestOpenSplicedHeader(t *testing.T) {
	r, _ := MustKeyring(t)
	a, _ := r.Seal([]byte("alpha"), []byte("a"))
	b, _ := r.Seal([]byte("bravo"), []byte("a"))
	spliced := append(bytes.Clone(a[:headerSize]), b[headerSize:]...)
	if _, err := r.Open(spliced, []byte("a")); !errors.Is(err, ErrAuth) {
		t.Errorf("got %v, want %v", err, ErrAuth)
	}
}

func TestKeyRotation(t *testing.T) {
	oldRing, oldKey := MustKeyring(t)
	oldBlob, err := oldRing.Seal([]byte("old secret"), []byte("rec"))
	if err != nil {
		t.Fatal(err)
	}

	r, newKeyBytes := MustKeyring(t)
	if _, err := r.Open(oldBlob, []byte("rec")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("before AddOldKey: got %v, want %v", err, ErrUnknownKey)
	}
	if err := r.AddOldKey(oldKey); err != nil {
		t.Fatal(err)
	}
	if err := r.AddOldKey(oldKey); err != nil { // idempotent
		t.Fatal(err)
	}
	got, err := r.Open(oldBlob, []byte("rec"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Reveal()) != "old secret" {
		t.Errorf("got %q, want %q", got.Reveal(), "old secret")
	}

	// Seal uses the primary key, never an old one.
	blob, _ := r.Seal([]byte("new"), []byte("rec"))
	if got, want := hex.EncodeToString(blob[offKeyID:offWrapNonce]), KeyID(newKeyBytes); got != want {
		t.Errorf("sealed with key %s, want primary %s", got, want)
	}
	if got, want := r.KeyIDs(), []string{KeyID(newKeyBytes), KeyID(oldKey)}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("KeyIDs() = %v, want %v", got, want)
	}
	if err := r.AddOldKey([]byte("short")); err == nil {
		t.Error("AddOldKey accepted a 5-byte key")
	}
}

func TestKeyringPrintsNoKey(t *testing.T) {
	r, key := MustKeyring(t)
	for _, s := range []string{r.String(), logLine(t, true, slog.Any("ring", r)), logLine(t, false, slog.Any("ring", r))} {
		if strings.Contains(strings.ToLower(s), hex.EncodeToString(key)) {
			t.Errorf("%q contains the key", s)
		}
		if !strings.Contains(s, r.KeyID()) {
			t.Errorf("%q does not name the key ID %s", s, r.KeyID())
		}
	}
}

func TestKeyringConcurrent(t *testing.T) {
	r, _ := MustKeyring(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i%2 == 0 {
				r.AddOldKey(newKey(t))
			}
			blob, err := r.Seal([]byte("x"), []byte("rec"))
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := r.Open(blob, []byte("rec")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func FuzzOpen(f *testing.F) {
	r, err := NewKeyring(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		f.Fatal(err)
	}
	blob, _ := r.Seal([]byte("seed plaintext"), []byte("aad"))
	f.Add(blob, []byte("aad"))
	f.Add(blob[:headerSize], []byte("aad"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{Version1}, []byte("aad"))
	f.Add(make([]byte, Overhead), []byte(nil))
	f.Fuzz(func(t *testing.T, blob, aad []byte) {
		got, err := r.Open(blob, aad)
		if err != nil {
			if got.Len() != 0 {
				t.Errorf("plaintext returned with error %v", err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrAuth) {
				t.Errorf("error %v wraps none of the sentinels", err)
			}
			return
		}
		// Opening must be deterministic and agree with a fresh seal.
		again, err := r.Seal(got.Reveal(), aad)
		if err != nil {
			t.Fatal(err)
		}
		back, err := r.Open(again, aad)
		if err != nil || !bytes.Equal(back.Reveal(), got.Reveal()) {
			t.Errorf("reseal round trip failed: %v", err)
		}
	})
}
