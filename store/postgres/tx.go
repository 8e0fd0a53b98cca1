package postgres

import (
	"context"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// querier is what both the pool and a transaction offer; the read queries
// are written once against it.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Tx is a gatehouse.Tx: one read-committed PostgreSQL transaction. It is
// valid only inside the function passed to Store.Update.
type Tx struct {
	ctx context.Context
	tx  pgx.Tx
	// aborted is the first database error seen; PostgreSQL has aborted
	// the transaction and will not commit it.
	aborted error
	// events are the events fn appended, written by flushEvents before
	// COMMIT.
	events []*gatehouse.Event
}

var _ gatehouse.Tx = (*Tx)(nil)

// fail maps a database error and records it: PostgreSQL has aborted the
// transaction.
func (t *Tx) fail(op string, err error) error { return t.check(mapErr(op, err)) }

func (t *Tx) GetScope(id string) (*gatehouse.Scope, error) {
	s, err := getScope(t.ctx, t.tx, id)
	return s, t.check(err)
}

func (t *Tx) CreateToken(tok *gatehouse.Token) error {
	tag, err := t.tx.Exec(t.ctx, `INSERT INTO tokens (id, scope, name, role, hash, created_at, created_by, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
		tok.ID, tok.Scope, tok.Name, string(tok.Role), nonNil(tok.Hash), tok.CreatedAt, tok.CreatedBy, tok.RevokedAt)
	if err != nil {
		return t.fail("create token", err)
	}
	if tag.RowsAffected() == 0 {
		return gatehouse.Errorf(gatehouse.EConflict, "token %q already exists", tok.ID)
	}
	return nil
}

func (t *Tx) RevokeToken(id string, at time.Time) error {
	tag, err := t.tx.Exec(t.ctx, `UPDATE tokens SET revoked_at = $2 WHERE id = $1`, id, at)
	if err != nil {
		return t.fail("revoke token", err)
	}
	if tag.RowsAffected() == 0 {
		return gatehouse.Errorf(gatehouse.ENotFound, "token %q not found", id)
	}
	return nil
}

func (t *Tx) PutSettingIfAbsent(key string, value []byte) ([]byte, error) {
	// Two statements, not one: in read committed each statement sees what
	// committed before it started, so the SELECT sees the row of a
	// concurrent writer that the INSERT waited for.
	if _, err := t.tx.Exec(t.ctx, `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		key, nonNil(value)); err != nil {
		return nil, t.fail("put setting", err)
	}
	v, err := getSetting(t.ctx, t.tx, key)
	return v, t.check(err)
}

// check records err as aborting the transaction unless it is a bare
// *gatehouse.Error: those the queries return without a database error (a
// missing row, a duplicate key caught by ON CONFLICT), while every database
// error comes wrapped by mapErr.
func (t *Tx) check(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*gatehouse.Error); ok {
		return err
	}
	if t.aborted == nil {
		t.aborted = err
	}
	return err
}

// nonNil returns b, or an empty slice for nil, for NOT NULL bytea columns.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
