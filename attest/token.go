package attest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// NewToken returns a fresh bootstrap token: 32 random bytes, base64url
// without padding (43 characters). Store only HashToken of it.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashToken returns the SHA-256 of a token, the form it is stored in. The
// token is 256 random bits, so a fast hash is as strong as a slow one.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// TokenMatches reports, in constant time, whether presented hashes to
// stored. An empty or short stored hash matches nothing.
func TokenMatches(stored []byte, presented string) bool {
	if len(stored) != sha256.Size {
		return false
	}
	h := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(stored, h[:]) == 1
}
