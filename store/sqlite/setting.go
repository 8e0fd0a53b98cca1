package sqlite

import (
	"context"
	"fmt"
)

// GetSetting implements gatehouse.Reader.
func (s *Store) GetSetting(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	if err := s.reads.queryRow(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v); err != nil {
		return nil, storeError("get setting", err, fmt.Sprintf("setting %q", key), "")
	}
	return v, nil
}

// PutSettingIfAbsent implements gatehouse.Tx. Writes are serialized by the
// writer, so insert-or-ignore then read is race free.
func (t *tx) PutSettingIfAbsent(key string, value []byte) ([]byte, error) {
	what := fmt.Sprintf("setting %q", key)
	if _, err := t.q().exec(bg, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, orEmpty(value)); err != nil {
		return nil, storeError("put setting", err, what, "")
	}
	var v []byte
	if err := t.q().queryRow(bg, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v); err != nil {
		return nil, storeError("put setting", err, what, "")
	}
	return v, nil
}
