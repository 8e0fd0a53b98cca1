package postgres

import (
	"context"
	"errors"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

func (s *Store) GetCRL(ctx context.Context, scope string) (*gatehouse.CRL, error) {
	return getCRL(ctx, s.pool, scope, "")
}

// GetCRL reads the scope's CRL and locks its row until the transaction
// ends, so that a read-modify-write of the CRL number never loses an update.
func (t *Tx) GetCRL(scope string) (*gatehouse.CRL, error) {
	crl, err := getCRL(t.ctx, t.tx, scope, " FOR UPDATE")
	return crl, t.check(err)
}

func getCRL(ctx context.Context, q querier, scope, lock string) (*gatehouse.CRL, error) {
	crl := &gatehouse.CRL{Scope: scope}
	err := q.QueryRow(ctx, `SELECT number, der, this_update, next_update FROM crls WHERE scope = $1`+lock, scope).
		Scan(&crl.Number, &crl.DER, &crl.ThisUpdate, &crl.NextUpdate)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "scope %q has no CRL", scope)
	} else if err != nil {
		return nil, mapErr("get CRL", err)
	}
	crl.DER = nilIfEmpty(crl.DER)
	crl.ThisUpdate, crl.NextUpdate = crl.ThisUpdate.UTC(), crl.NextUpdate.UTC()
	return crl, nil
}

// PutCRL inserts the scope's CRL or replaces one with a lower number. The
// upsert's WHERE keeps a stored CRL whose number is not lower: then no row
// changes, which is the conflict, reported without a database error.
func (t *Tx) PutCRL(crl *gatehouse.CRL) error {
	tag, err := t.tx.Exec(t.ctx, `
		INSERT INTO crls AS c (scope, number, der, this_update, next_update) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (scope) DO UPDATE SET number = EXCLUDED.number, der = EXCLUDED.der,
			this_update = EXCLUDED.this_update, next_update = EXCLUDED.next_update
		WHERE c.number < EXCLUDED.number`,
		crl.Scope, crl.Number, nonNil(crl.DER), crl.ThisUpdate, crl.NextUpdate)
	if err != nil {
		return t.fail("put CRL", err)
	}
	if tag.RowsAffected() == 0 {
		return gatehouse.Errorf(gatehouse.EConflict, "the CRL of scope %q has a number not lower than %d; CRL numbers only grow", crl.Scope, crl.Number)
	}
	return nil
}
