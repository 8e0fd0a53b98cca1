package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// preparer is a *sql.DB or a *sql.Conn.
type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// stmtCache keeps prepared statements: preparing costs more than running the
// small statements a store issues. Queries built at run time (device
// filters) come in many shapes, so the cache stops growing at maxStmts and
// the rest are prepared per use.
type stmtCache struct {
	db    preparer
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

const maxStmts = 512

func newStmtCache(db preparer) *stmtCache {
	return &stmtCache{db: db, stmts: map[string]*sql.Stmt{}}
}

// get returns a prepared statement for query and whether the caller must
// close it (it was not cached).
func (c *stmtCache) get(ctx context.Context, query string) (st *sql.Stmt, owned bool, err error) {
	c.mu.Lock()
	st, ok := c.stmts[query]
	c.mu.Unlock()
	if ok {
		return st, false, nil
	}
	st, err = c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.stmts[query]; ok {
		st.Close()
		return prev, false, nil
	}
	if len(c.stmts) >= maxStmts {
		return st, true, nil
	}
	c.stmts[query] = st
	return st, false, nil
}

func (c *stmtCache) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, owned, err := c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	if owned {
		// Closing the statement before the rows is allowed: database/sql
		// defers it until the rows are closed.
		defer st.Close()
	}
	return st.QueryContext(ctx, args...)
}

// scanner is a *sql.Row, or a failure to prepare one.
type scanner interface{ Scan(dest ...any) error }

type errScanner struct{ err error }

func (e errScanner) Scan(...any) error { return e.err }

func (c *stmtCache) queryRow(ctx context.Context, query string, args ...any) scanner {
	st, owned, err := c.get(ctx, query)
	if err != nil {
		return errScanner{err}
	}
	if owned {
		defer st.Close()
	}
	return st.QueryRowContext(ctx, args...)
}

func (c *stmtCache) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, owned, err := c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	if owned {
		defer st.Close()
	}
	return st.ExecContext(ctx, args...)
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.stmts {
		errs = append(errs, st.Close())
		delete(c.stmts, q)
	}
	return errors.Join(errs...)
}
