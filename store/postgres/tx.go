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
	// tx sends the statements (see pipe); it also knows whether the
	// transaction has failed.
	tx *pipe
	// events are the events fn appended, queued by flushEvents before
	// COMMIT.
	events []*gatehouse.Event
}

var (
	_ gatehouse.Tx       = (*Tx)(nil)
	_ gatehouse.Deferrer = (*Tx)(nil)
)

// Deferred implements gatehouse.Deferrer. The view queues CreateDevice,
// AddStateChange, CreateCredential, UpdateCredential, PutRegistration and
// CountEnrollmentUse in the pipe; UpdateDevice runs at once (it may have to
// rewrite the device's tag rows, depending on its answer).
func (t *Tx) Deferred(onErr func(error) error) gatehouse.Tx {
	if onErr == nil {
		onErr = func(err error) error { return err }
	}
	return &deferredTx{Tx: t, onErr: onErr}
}

// deferredTx is the view Deferred returns.
type deferredTx struct {
	*Tx
	onErr func(error) error
}

// write queues q, or returns the error of building it (bad input: nothing
// was sent).
func (d *deferredTx) write(q queued, err error) error {
	if err != nil {
		return d.onErr(err)
	}
	if d.tx.failed != nil {
		return d.tx.failed
	}
	q.onErr = d.onErr
	d.tx.queue(q)
	return nil
}

func (d *deferredTx) CreateDevice(dev *gatehouse.Device) error {
	return d.write(d.createDevice(dev))
}

func (d *deferredTx) UpdateDevice(dev *gatehouse.Device, prevETag string) error {
	if err := d.Tx.UpdateDevice(dev, prevETag); err != nil {
		return d.onErr(err)
	}
	return nil
}

func (d *deferredTx) AddStateChange(scope, id string, c *gatehouse.StateChange) error {
	return d.write(d.addStateChange(scope, id, c), nil)
}

func (d *deferredTx) CreateCredential(c *gatehouse.Credential) error {
	return d.write(d.createCredential(c), nil)
}

func (d *deferredTx) UpdateCredential(c *gatehouse.Credential) error {
	return d.write(d.updateCredential(c), nil)
}

func (d *deferredTx) PutRegistration(r *gatehouse.Registration) error {
	return d.write(d.putRegistration(r), nil)
}

func (d *deferredTx) CountEnrollmentUse(u gatehouse.EnrollmentUse) error {
	return d.write(d.countEnrollmentUse(u), nil)
}

// write runs q now: the non-deferred form of the deferrable writes.
func (t *Tx) write(q queued, err error) error {
	if err != nil {
		return err
	}
	return t.check(t.tx.run(t.ctx, q))
}

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
	t.tx.noteAbort(err)
	return err
}

// nonNil returns b, or an empty slice for nil, for NOT NULL bytea columns.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
