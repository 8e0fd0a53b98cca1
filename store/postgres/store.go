// Package postgres stores Gatehouse's data in PostgreSQL, through pgx, for
// installations where several Gatehouse nodes share one database.
//
// Open applies the embedded migrations under an advisory lock, so nodes may
// start together. Update runs read-committed transactions in which
// Tx.GetDevice locks the row (SELECT ... FOR UPDATE) and AppendEvent locks
// the scope's sequence row: read-modify-write never loses an update, and
// events commit in sequence order. Statements that may fail for ordinary
// reasons (a duplicate key, a missing row) are written so that PostgreSQL
// reports no error, which would abort the whole transaction: the caller's
// function may handle the gatehouse.Error and carry on.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is a gatehouse.Store backed by PostgreSQL. It is safe for concurrent
// use.
type Store struct {
	pool *pgxpool.Pool
	// analyze is the one-off ANALYZE of tables never analyzed (analyze.go).
	analyze firstAnalyze
}

var _ gatehouse.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value string, as libpq takes), migrates its schema to the version this
// binary knows, and returns the store. It fails if the schema is newer.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included: keep it out.
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "the PostgreSQL connection string is malformed; use postgres://user@host:port/db?sslmode=... or key=value pairs")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, mapErr("connect", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, mapErr("connect", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool}
	s.analyze.ctx, s.analyze.stop = context.WithCancel(context.Background())
	return s, nil
}

// Close releases the store's connections.
func (s *Store) Close() error {
	s.analyze.mu.Lock()
	s.analyze.closed = true
	s.analyze.mu.Unlock()
	s.analyze.stop()
	s.analyze.wg.Wait()
	s.pool.Close()
	return nil
}

// Ready reports whether the database is reachable and its schema is the one
// this binary expects.
func (s *Store) Ready(ctx context.Context) error {
	v, err := schemaVersion(ctx, s.pool)
	if err != nil {
		return err
	}
	if v != latestVersion {
		return fmt.Errorf("schema version %d, want %d: %w", v, latestVersion,
			gatehouse.Errorf(gatehouse.EUnavailable, "the database schema is not the version this node expects; check that all nodes run the same Gatehouse release"))
	}
	return nil
}

// maxAttempts bounds how often Update runs fn when PostgreSQL reports a
// serialization failure or a deadlock.
const maxAttempts = 5

// Update runs fn in a transaction and commits it. When PostgreSQL aborts the
// transaction for a serialization failure or a deadlock, Update runs fn again
// (up to maxAttempts in all), after a short random pause.
func (s *Store) Update(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	for attempt := 1; ; attempt++ {
		retry, err := s.update(ctx, fn)
		if err == nil {
			s.committed()
		}
		if !retry || attempt == maxAttempts {
			return err
		}
		pause := time.Duration(attempt) * time.Duration(1+rand.IntN(10)) * time.Millisecond
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
}

// update makes one attempt; retry says whether another may succeed.
//
// BEGIN is not sent on its own: it waits in the pipe and goes with the
// transaction's first statement; COMMIT goes with the events (and any other
// queued statement that cannot refuse). A registration takes four round
// trips: BEGIN with the registration's lock and read, the device's read,
// the deferred writes, the events with COMMIT.
func (s *Store) update(ctx context.Context, fn func(tx gatehouse.Tx) error) (retry bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, mapErr("begin", err)
	}
	// A connection left inside a transaction (a failed ROLLBACK, a lost
	// batch) is closed by the pool, not reused.
	defer conn.Release()
	p := &pipe{conn: conn.Conn()}
	p.queue(queued{sql: "BEGIN", check: execCheck("begin")})
	tx := &Tx{ctx: ctx, tx: p}
	committed := false
	defer func() {
		// Also when fn panics: the connection goes back to the pool clean
		// and the panic carries on to the caller.
		if !committed {
			p.rollback(context.WithoutCancel(ctx))
		}
	}()
	err = fn(tx)
	if p.failed != nil {
		// A deferred write failed: its error comes first, as it would have
		// had the write been sent at once (fn may have tripped over it
		// later and returned something else).
		err = p.failed
	}
	if err != nil {
		// fn may have turned the driver's error into its own; the pipe
		// remembers whether PostgreSQL asked for a retry.
		return isRetryable(p.aborted) || isRetryable(err), err
	}
	if p.aborted != nil {
		// fn swallowed an error that aborted the transaction: COMMIT would
		// only roll back.
		return isRetryable(p.aborted), mapErr("commit", p.aborted)
	}
	if p.refusable() {
		// Deferred writes that may refuse go first, and are checked, so
		// that COMMIT follows only if none did.
		err = p.flush(ctx)
	}
	if err == nil {
		// The events, and COMMIT with them: the scope's counter row is
		// locked from the events' statement to the end of COMMIT only.
		tx.flushEvents()
		if !p.sent && len(p.queued) == 1 {
			// Nothing but BEGIN: no statement, nothing to commit.
			p.queued = nil
			committed = true
			return false, nil
		}
		err = p.commit(ctx)
	}
	if p.failed != nil || p.aborted != nil {
		// A queued statement failed: COMMIT was not sent, or PostgreSQL
		// skipped it; or reading the last batch's results broke off (a
		// lost connection, a cancelled context), after which COMMIT's
		// outcome is unknown. Only an explicit serialization failure or
		// deadlock is retried, so nothing is applied twice.
		return isRetryable(p.aborted) || isRetryable(err), err
	}
	committed = true // or failed: either way there is nothing to roll back
	if err != nil {
		// A connection lost during COMMIT leaves the outcome unknown, so
		// only an explicit serialization failure is retried.
		return isRetryable(err), mapErr("commit", err)
	}
	return false, nil
}

// isRetryable reports whether PostgreSQL aborted a transaction that may
// succeed if run again.
func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// isUnavailable reports whether err means the database cannot be reached or
// will not serve us right now.
func isUnavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || // connection exception
			pe.Code == "53300" || // too_many_connections
			pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" // shutdown, crash, starting up
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed)
}

// mapErr gives a driver error its gatehouse code. The driver's error stays in
// the chain for logs, but never in the *gatehouse.Error message, which may be
// shown to API callers.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var ge *gatehouse.Error
	if errors.As(err, &ge) {
		return err
	}
	var pe *pgconn.PgError
	switch {
	case isUnavailable(err):
		return fmt.Errorf("%s: %w: %w", op, gatehouse.Errorf(gatehouse.EUnavailable, "the database is unavailable; try again later"), err)
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%s: %w: %w", op, gatehouse.Errorf(gatehouse.ENotFound, "not found"), err)
	case errors.As(err, &pe) && pe.Code == "23505":
		return fmt.Errorf("%s: %w: %w", op, gatehouse.Errorf(gatehouse.EConflict, "already exists"), err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
