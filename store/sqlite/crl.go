package sqlite

import (
	"context"
	"fmt"

	"github.com/gatehouse-iot/gatehouse"
)

func getCRL(ctx context.Context, c *stmtCache, scope string) (*gatehouse.CRL, error) {
	crl := gatehouse.CRL{Scope: scope}
	var this, next int64
	err := c.queryRow(ctx, `SELECT number, der, this_update, next_update FROM crls WHERE scope = ?`, scope).
		Scan(&crl.Number, &crl.DER, &this, &next)
	if err != nil {
		return nil, storeError("get CRL", err, fmt.Sprintf("CRL of scope %q", scope), "")
	}
	crl.DER = nilIfEmpty(crl.DER)
	crl.ThisUpdate, crl.NextUpdate = fromMicros(this), fromMicros(next)
	return &crl, nil
}

// GetCRL implements gatehouse.Reader.
func (s *Store) GetCRL(ctx context.Context, scope string) (*gatehouse.CRL, error) {
	return getCRL(ctx, s.reads, scope)
}

// GetCRL implements gatehouse.Tx. It needs no lock: every write runs on the
// one writer goroutine, so nothing changes the row before fn returns.
func (t *tx) GetCRL(scope string) (*gatehouse.CRL, error) { return getCRL(bg, t.q(), scope) }

// PutCRL implements gatehouse.Tx. The upsert's WHERE keeps a stored CRL
// whose number is not lower; then no row changes, which is the conflict.
func (t *tx) PutCRL(crl *gatehouse.CRL) error {
	what := fmt.Sprintf("CRL of scope %q", crl.Scope)
	res, err := t.q().exec(bg, `INSERT INTO crls (scope, number, der, this_update, next_update) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (scope) DO UPDATE SET number = excluded.number, der = excluded.der,
			this_update = excluded.this_update, next_update = excluded.next_update
		WHERE excluded.number > crls.number`,
		crl.Scope, crl.Number, orEmpty(crl.DER), micros(crl.ThisUpdate), micros(crl.NextUpdate))
	if err != nil {
		return storeError("put CRL", err, what, "")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return storeError("put CRL", err, what, "")
	}
	if n == 0 {
		return gatehouse.Errorf(gatehouse.EConflict, "%s has a number not lower than %d; CRL numbers only grow", what, crl.Number)
	}
	return nil
}
