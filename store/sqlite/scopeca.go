package sqlite

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gatehouse-iot/gatehouse"
)

// GetScopeCA implements gatehouse.Reader.
func (s *Store) GetScopeCA(ctx context.Context, scope string) (*gatehouse.ScopeCA, error) {
	ca := gatehouse.ScopeCA{Scope: scope}
	var chain []byte
	var imported bool
	var us int64
	err := s.reads.queryRow(ctx, `SELECT cert_der, chain, sealed_key, imported, created_at FROM scope_cas WHERE scope = ?`, scope).
		Scan(&ca.CertDER, &chain, &ca.SealedKey, &imported, &us)
	if err != nil {
		return nil, storeError("get scope CA", err, fmt.Sprintf("CA of scope %q", scope), "")
	}
	if ca.ChainDER, err = decodeChain(chain); err != nil {
		return nil, fmt.Errorf("get scope CA: chain of scope %q: %w", scope, err)
	}
	ca.CertDER, ca.SealedKey = nilIfEmpty(ca.CertDER), nilIfEmpty(ca.SealedKey)
	ca.Imported = imported
	ca.CreatedAt = fromMicros(us)
	return &ca, nil
}

// PutScopeCA implements gatehouse.Tx: an upsert, so the chain is replaced
// with the certificate in one row write.
func (t *tx) PutScopeCA(ca *gatehouse.ScopeCA) error {
	_, err := t.q().exec(bg, `INSERT INTO scope_cas (scope, cert_der, chain, sealed_key, imported, created_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (scope) DO UPDATE SET cert_der = excluded.cert_der, chain = excluded.chain,
			sealed_key = excluded.sealed_key, imported = excluded.imported, created_at = excluded.created_at`,
		ca.Scope, orEmpty(ca.CertDER), encodeChain(ca.ChainDER), orEmpty(ca.SealedKey), ca.Imported, micros(ca.CreatedAt))
	return storeError("put scope CA", err, fmt.Sprintf("CA of scope %q", ca.Scope), "")
}

// encodeChain writes each certificate preceded by its length as a uvarint.
// Nil and empty chains both encode to no bytes.
func encodeChain(chain [][]byte) []byte {
	n := 0
	for _, c := range chain {
		n += binary.MaxVarintLen64 + len(c)
	}
	b := make([]byte, 0, n)
	for _, c := range chain {
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	}
	return b
}

// decodeChain reverses encodeChain; an empty chain, and an empty element,
// read back as nil.
func decodeChain(b []byte) ([][]byte, error) {
	var chain [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errors.New("malformed chain encoding")
		}
		b = b[k:]
		var c []byte
		if n > 0 {
			c = append([]byte(nil), b[:n]...)
		}
		chain = append(chain, c)
		b = b[n:]
	}
	return chain, nil
}

// nilIfEmpty returns nil for an empty slice: stores read empty byte values
// back as nil.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
