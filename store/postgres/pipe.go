package postgres

import (
	"context"
	"slices"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pipe sends one transaction's statements on its connection. Each round
// trip costs both sides CPU (loopback socket writes, wake-ups), and that,
// not fsync, bounds a registration; so statements whose answer nobody
// waits for are queued and go out in front of the next statement whose
// answer is needed, in one batch (one round trip). Queued are: BEGIN, until
// the first statement; the registration lock before its read; the writes of
// a Tx.Deferred view; a savepoint's RELEASE; at the end, the events, which
// go with COMMIT. Queued writes that can refuse (a duplicate, a stale etag)
// are sent and checked before that last batch, since COMMIT must not follow
// a refusal.
//
// Statements in a batch run one after the other, each with its own
// snapshot (read committed), exactly as if sent one at a time; what changes
// is when their results are looked at: when the batch comes back, in queue
// order. The first failure of a queued statement is kept (failed): it is
// returned by the call that sent it and by every later one, and the
// transaction does not commit. A database error makes PostgreSQL skip the
// rest of the batch (COMMIT included) and abort the transaction.
type pipe struct {
	conn   *pgx.Conn
	queued []queued
	// sent says whether anything went to the server (then there is a
	// transaction to end).
	sent bool
	// failed is the first failure of a queued statement, as the code that
	// queued it will see it (its onErr applied).
	failed error
	// aborted is the first database error seen: PostgreSQL has aborted the
	// transaction and will not commit it.
	aborted error
}

// queued is a statement waiting in the pipe.
type queued struct {
	sql  string
	args []any
	// check reads the statement's result, the next one in br, and returns
	// the error the method that queued it returns (database errors mapped
	// by mapErr), or an explain to run once the batch is closed.
	check func(br pgx.BatchResults) error
	// refusable: check may fail without a database error (ON CONFLICT DO
	// NOTHING skipped a duplicate, a guard matched no row). COMMIT must
	// then wait for check instead of riding in the same batch.
	refusable bool
	// onErr maps a failure for the caller (Tx.Deferred); nil for none.
	onErr func(error) error
}

// explain is what a check returns when the failure needs a read to say
// what it was (a stale etag or a missing row): the read runs after the
// batch is closed.
type explain func() error

func (explain) Error() string { return "postgres: explain a refused write" }

// execCheck is the check of a statement that cannot refuse.
func execCheck(op string) func(br pgx.BatchResults) error {
	return func(br pgx.BatchResults) error {
		_, err := br.Exec()
		return mapErr(op, err)
	}
}

// rowsCheck is the check of a statement that refuses by changing no row:
// refused gives the error then.
func rowsCheck(op string, refused func() error) func(br pgx.BatchResults) error {
	return func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		if err != nil {
			return mapErr(op, err)
		}
		if tag.RowsAffected() == 0 {
			return refused()
		}
		return nil
	}
}

func (p *pipe) queue(q queued) { p.queued = append(p.queued, q) }

// send sends what is queued followed by b's statements in one batch,
// checks the queued statements' results and returns the batch positioned
// at b's first result (the caller closes it). With nothing queued it is
// Conn.SendBatch.
func (p *pipe) send(ctx context.Context, b *pgx.Batch) (pgx.BatchResults, error) {
	if p.failed != nil {
		return nil, p.failed
	}
	p.sent = true
	if len(p.queued) == 0 {
		return p.conn.SendBatch(ctx, b), nil
	}
	q := p.queued
	p.queued = nil
	all := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(q)+b.Len())}
	for _, s := range q {
		all.Queue(s.sql, s.args...)
	}
	all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	br := p.conn.SendBatch(ctx, all)
	for _, s := range q {
		if err := s.check(br); err != nil {
			cerr := br.Close()
			if _, ok := err.(explain); ok && cerr != nil {
				// A later statement of the batch failed: the transaction
				// is aborted, and the read that would say why s refused
				// cannot run. Its refusal stands, as the least it says.
				p.noteAbort(mapErr("batch", cerr))
				err = gatehouse.Errorf(gatehouse.EPreconditionFailed, "the row changed since it was read; read it again and retry")
			}
			return nil, p.fail(s, err)
		}
	}
	return br, nil
}

// fail records the failure of queued statement s and returns it as s's
// caller sees it.
func (p *pipe) fail(s queued, err error) error {
	if ex, ok := err.(explain); ok {
		err = ex()
	}
	p.noteAbort(err)
	if s.onErr != nil {
		err = s.onErr(err)
	}
	p.failed = err
	return err
}

// noteAbort records err as aborting the transaction unless it is a bare
// *gatehouse.Error: those the statements return without a database error
// (a missing row, a duplicate key caught by ON CONFLICT), while every
// database error comes wrapped by mapErr.
func (p *pipe) noteAbort(err error) {
	if err == nil {
		return
	}
	if _, ok := err.(*gatehouse.Error); ok {
		return
	}
	if p.aborted == nil {
		p.aborted = err
	}
}

// run sends q now (behind what is queued) and returns its check's error.
// A refusal is an ordinary error: unlike a queued statement's, it leaves
// the transaction usable.
func (p *pipe) run(ctx context.Context, q queued) error {
	b := &pgx.Batch{}
	b.Queue(q.sql, q.args...)
	br, err := p.send(ctx, b)
	if err != nil {
		return err
	}
	err = q.check(br)
	if cerr := br.Close(); err == nil {
		err = mapErr("close batch", cerr)
	}
	if ex, ok := err.(explain); ok {
		err = ex()
	}
	return err
}

// flush sends what is queued, if anything.
func (p *pipe) flush(ctx context.Context) error {
	if len(p.queued) == 0 {
		return p.failed
	}
	br, err := p.send(ctx, &pgx.Batch{})
	if err != nil {
		return err
	}
	return mapErr("flush", br.Close())
}

// refusable reports whether a queued statement can refuse: it must be
// checked before COMMIT is sent.
func (p *pipe) refusable() bool {
	return slices.ContainsFunc(p.queued, func(q queued) bool { return q.refusable })
}

// commit sends COMMIT behind what is queued, which must not be refusable.
func (p *pipe) commit(ctx context.Context) error {
	tag, err := p.Exec(ctx, "COMMIT")
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// rollback ends the transaction if anything of it reached the server.
func (p *pipe) rollback(ctx context.Context) error {
	p.queued = nil
	if !p.sent {
		return nil
	}
	_, err := p.conn.Exec(ctx, "ROLLBACK")
	return err
}

// Exec, Query, QueryRow and SendBatch are pgx.Tx's, sending what is queued
// first. The error of a failed queued statement is returned instead of the
// statement's own.

func (p *pipe) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if p.failed == nil && len(p.queued) == 0 {
		p.sent = true
		return p.conn.Exec(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	br, err := p.send(ctx, b)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (p *pipe) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if p.failed == nil && len(p.queued) == 0 {
		p.sent = true
		return p.conn.Query(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	br, err := p.send(ctx, b)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (p *pipe) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if p.failed == nil && len(p.queued) == 0 {
		p.sent = true
		return p.conn.QueryRow(ctx, sql, args...)
	}
	rows, err := p.Query(ctx, sql, args...)
	return batchRow{rows: rows, err: err}
}

func (p *pipe) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	br, err := p.send(ctx, b)
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return br
}

// batchRows are the rows of a query sent in a batch: closing them closes
// the batch, which frees the connection.
type batchRows struct {
	pgx.Rows
	br       pgx.BatchResults
	done     bool
	closeErr error
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Close() {
	if r.done {
		return
	}
	r.done = true
	r.Rows.Close()
	r.closeErr = r.br.Close()
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.closeErr
}

// batchRow is QueryRow's answer from a batch, as pgx's own: ErrNoRows
// without a row.
type batchRow struct {
	rows pgx.Rows
	err  error
}

func (r batchRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
