package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Version1 is the version byte of the blob format that Seal writes.
const Version1 = 1

// Layout of a version 1 blob; see the package documentation.
const (
	nonceSize      = 12
	tagSize        = 16
	wrappedKeySize = KeySize + tagSize

	offKeyID      = 1
	offWrapNonce  = offKeyID + keyIDSize
	offWrappedKey = offWrapNonce + nonceSize
	offDataNonce  = offWrappedKey + wrappedKeySize
	headerSize    = offDataNonce + nonceSize // 81

	// Overhead is how many bytes Seal adds to a plaintext.
	Overhead = headerSize + tagSize
)

// wrapLabel separates data-key wrapping from any other use of a master key.
const wrapLabel = "gatehouse secret data key"

var (
	// ErrUnknownKey means a blob was sealed with a master key that is not
	// in the keyring.
	ErrUnknownKey = errors.New("sealed with a master key that is not in the keyring")
	// ErrMalformed means a blob is not a sealed blob this version can read.
	ErrMalformed = errors.New("malformed sealed blob")
	// ErrAuth means a blob failed authentication: it was modified, or is
	// opened with other aad than it was sealed with (it belongs to another
	// record).
	ErrAuth = errors.New("sealed blob failed authentication")
)

// Seal encrypts plaintext under a fresh data key wrapped by the primary
// master key, and returns a self-describing blob (see the package
// documentation). aad names the record the blob belongs to; Open must be
// given the same aad. aad is authenticated, not encrypted, and not stored.
func (r *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	mk := r.primaryKey()

	dek := make([]byte, KeySize)
	defer clear(dek)
	rand.Read(dek)
	dataAEAD, err := newGCM(dek)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}

	blob := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	blob[0] = Version1
	copy(blob[offKeyID:], mk.id[:])
	rand.Read(blob[offWrapNonce:offWrappedKey])
	rand.Read(blob[offDataNonce:headerSize])

	mk.aead.Seal(blob[offWrappedKey:offWrappedKey], blob[offWrapNonce:offWrappedKey], dek, wrapAAD(blob))
	return dataAEAD.Seal(blob, blob[offDataNonce:headerSize], plaintext, dataAAD(blob, aad)), nil
}

// Open decrypts a blob made by Seal with the same aad. Its errors wrap
// ErrMalformed, ErrUnknownKey or ErrAuth and carry no key material.
func (r *Keyring) Open(blob, aad []byte) (Bytes, error) {
	if len(blob) == 0 {
		return Bytes{}, fmt.Errorf("open: %w: empty", ErrMalformed)
	}
	if blob[0] != Version1 {
		return Bytes{}, fmt.Errorf("open: %w: version %d; this build reads version %d", ErrMalformed, blob[0], Version1)
	}
	if len(blob) < Overhead {
		return Bytes{}, fmt.Errorf("open: %w: %d bytes, shorter than the minimum %d", ErrMalformed, len(blob), Overhead)
	}
	id := keyID(blob[offKeyID:offWrapNonce])
	mk := r.lookup(id)
	if mk == nil {
		return Bytes{}, fmt.Errorf("open: %w: the blob names master key %s, the keyring holds %v; add the master key that sealed it", ErrUnknownKey, id, r.KeyIDs())
	}

	dek, err := mk.aead.Open(nil, blob[offWrapNonce:offWrappedKey], blob[offWrappedKey:offDataNonce], wrapAAD(blob))
	if err != nil {
		return Bytes{}, fmt.Errorf("open: %w: the wrapped data key was modified", ErrAuth)
	}
	defer clear(dek)
	dataAEAD, err := newGCM(dek)
	if err != nil {
		return Bytes{}, fmt.Errorf("open: %w", err)
	}
	plaintext, err := dataAEAD.Open(nil, blob[offDataNonce:headerSize], blob[headerSize:], dataAAD(blob, aad))
	if err != nil {
		return Bytes{}, fmt.Errorf("open: %w: the blob was modified, or belongs to a record other than %q", ErrAuth, aad)
	}
	return NewBytes(plaintext), nil
}

// wrapAAD binds the wrapped data key to the format version and master key ID.
func wrapAAD(blob []byte) []byte {
	return append([]byte(wrapLabel), blob[:offWrapNonce]...)
}

// dataAAD binds the ciphertext to the whole header and the record's aad. The
// header has a fixed size, so the concatenation is unambiguous.
func dataAAD(blob, aad []byte) []byte {
	out := make([]byte, 0, headerSize+len(aad))
	out = append(out, blob[:headerSize]...)
	return append(out, aad...)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
