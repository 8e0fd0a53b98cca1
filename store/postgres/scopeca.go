package postgres

import (
	"context"
	"errors"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

func (s *Store) GetScopeCA(ctx context.Context, scope string) (*gatehouse.ScopeCA, error) {
	ca := &gatehouse.ScopeCA{Scope: scope}
	err := s.pool.QueryRow(ctx, `SELECT cert_der, chain, sealed_key, imported, created_at FROM scope_cas WHERE scope = $1`, scope).
		Scan(&ca.CertDER, &ca.ChainDER, &ca.SealedKey, &ca.Imported, &ca.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "scope %q has no CA", scope)
	} else if err != nil {
		return nil, mapErr("get scope CA", err)
	}
	ca.CertDER, ca.SealedKey = nilIfEmpty(ca.CertDER), nilIfEmpty(ca.SealedKey)
	if len(ca.ChainDER) == 0 {
		ca.ChainDER = nil
	}
	for i, c := range ca.ChainDER {
		ca.ChainDER[i] = nilIfEmpty(c)
	}
	ca.CreatedAt = ca.CreatedAt.UTC()
	return ca, nil
}

// PutScopeCA upserts the CA's row, chain included.
func (t *Tx) PutScopeCA(ca *gatehouse.ScopeCA) error {
	chain := make([][]byte, len(ca.ChainDER))
	for i, c := range ca.ChainDER {
		chain[i] = nonNil(c) // a nil element would be an SQL NULL
	}
	_, err := t.tx.Exec(t.ctx, `
		INSERT INTO scope_cas (scope, cert_der, chain, sealed_key, imported, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (scope) DO UPDATE SET cert_der = EXCLUDED.cert_der, chain = EXCLUDED.chain,
			sealed_key = EXCLUDED.sealed_key, imported = EXCLUDED.imported, created_at = EXCLUDED.created_at`,
		ca.Scope, nonNil(ca.CertDER), chain, nonNil(ca.SealedKey), ca.Imported, ca.CreatedAt)
	if err != nil {
		return t.fail("put scope CA", err)
	}
	return nil
}

// nilIfEmpty returns nil for an empty slice: stores read empty byte values
// back as nil.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
