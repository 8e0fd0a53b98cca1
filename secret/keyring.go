package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// KeySize is the size of a master key and of a data key, in bytes.
const KeySize = 32

// keyIDSize is the size of a key ID in a sealed blob.
const keyIDSize = 8

type keyID [keyIDSize]byte

func (id keyID) String() string { return hex.EncodeToString(id[:]) }

// masterKey is a master key ready for use. The raw bytes are not kept: the
// AEAD holds the expanded key schedule, which is all Seal and Open need.
type masterKey struct {
	id   keyID
	aead cipher.AEAD
}

func newMasterKey(key []byte) (*masterKey, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("master key is %d bytes; it must be %d", len(key), KeySize)
	}
	sum := sha256.Sum256(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &masterKey{id: keyID(sum[:keyIDSize]), aead: aead}, nil
}

// KeyID returns the ID of key: the first 8 bytes of its SHA-256, in hex.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:keyIDSize])
}

// A Keyring seals with one primary master key and opens with the primary or
// any older key, so that the master key can be rotated without re-sealing
// every record at once. It is safe for concurrent use. Printed or logged, it
// shows only key IDs.
type Keyring struct {
	mu      sync.RWMutex
	primary *masterKey
	keys    map[keyID]*masterKey // the primary and the old keys
}

// NewKeyring returns a Keyring whose primary key is key (32 bytes). It does
// not keep a reference to key; the caller may wipe it.
func NewKeyring(key []byte) (*Keyring, error) {
	k, err := newMasterKey(key)
	if err != nil {
		return nil, err
	}
	return &Keyring{primary: k, keys: map[keyID]*masterKey{k.id: k}}, nil
}

// AddOldKey adds a key that Open accepts but Seal does not use: the previous
// master key during a rotation. Adding a key already in the ring does nothing.
func (r *Keyring) AddOldKey(key []byte) error {
	k, err := newMasterKey(key)
	if err != nil {
		return fmt.Errorf("add old key: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.keys[k.id]; !ok {
		r.keys[k.id] = k
	}
	return nil
}

// AddOldKeyFile reads a master key file (see LoadMasterKeyFile) and adds its
// key with AddOldKey.
func (r *Keyring) AddOldKeyFile(path string) error {
	key, err := readKeyFile(path)
	if err != nil {
		return err
	}
	defer key.Wipe()
	return r.AddOldKey(key.Reveal())
}

// KeyID returns the ID of the primary key, the one Seal uses.
func (r *Keyring) KeyID() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.primary.id.String()
}

// KeyIDs returns the IDs of all keys in the ring, the primary first.
func (r *Keyring) KeyIDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := []string{r.primary.id.String()}
	for id := range r.keys {
		if id != r.primary.id {
			ids = append(ids, id.String())
		}
	}
	return ids
}

func (r *Keyring) lookup(id keyID) *masterKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys[id]
}

func (r *Keyring) primaryKey() *masterKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.primary
}

// String describes the ring by its key IDs.
func (r *Keyring) String() string {
	return "Keyring{" + strings.Join(r.KeyIDs(), ", ") + "}"
}

// LogValue implements slog.LogValuer: key IDs only.
func (r *Keyring) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("primary", r.KeyID()),
		slog.Any("keys", r.KeyIDs()),
	)
}
