package ca

import (
	"context"
	"maps"
	"sync"

	"github.com/gatehouse-iot/gatehouse"
)

// memStore is an in-memory SettingStore for tests, standing in for
// store/sqlite until that exists. Update runs fn in a serialized transaction
// over a copy of the settings and commits the copy only if fn succeeds, which
// is what PutSettingIfAbsent's first-writer-wins contract needs.
type memStore struct {
	mu       sync.Mutex
	settings map[string][]byte

	// beforeUpdate, if set, runs at the start of each Update, with the
	// lock held, to inject a concurrent writer or a failure.
	beforeUpdate func(settings map[string][]byte) error
}

func newMemStore() *memStore { return &memStore{settings: map[string][]byte{}} }

func (s *memStore) GetSetting(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.settings[key]
	if !ok {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "setting %q not found", key)
	}
	return append([]byte(nil), v...), nil
}

func (s *memStore) Update(ctx context.Context, fn func(gatehouse.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.beforeUpdate != nil {
		if err := s.beforeUpdate(s.settings); err != nil {
			return err
		}
	}
	tx := &memTx{settings: maps.Clone(s.settings)}
	if err := fn(tx); err != nil {
		return err
	}
	s.settings = tx.settings
	return nil
}

// memTx implements only PutSettingIfAbsent; any other Tx method panics on the
// nil embedded interface, which would show that the CA reached for more of
// the store than SettingStore promises.
type memTx struct {
	gatehouse.Tx
	settings map[string][]byte
}

func (tx *memTx) PutSettingIfAbsent(key string, value []byte) ([]byte, error) {
	if v, ok := tx.settings[key]; ok {
		return append([]byte(nil), v...), nil
	}
	tx.settings[key] = append([]byte(nil), value...)
	return append([]byte(nil), value...), nil
}
