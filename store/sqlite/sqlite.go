// Package sqlite is Gatehouse's embedded default store: a gatehouse.Store on
// one SQLite file, through the pure Go driver modernc.org/sqlite.
//
// Durability is not traded for speed: the database runs in WAL mode with
// synchronous=FULL, so a write is on disk when Update returns. Throughput
// comes from group commit instead. Every Update is queued to one writer
// goroutine, which runs whatever is queued (up to a bound) in one SQL
// transaction and commits once: one fsync for the whole batch. A fn that
// fails leaves the rest of the batch alone: the batch is rolled back and the
// other fns run again, each inside its own SAVEPOINT, so a failed fn is
// rolled back to its savepoint (see runOptimistic: savepoints cost, and are
// used only after a failure). A fn may therefore run more than once; only
// one run commits. A COMMIT that fails fails every Update in the batch. Reads go through a separate pool of read-only connections and
// never wait for the writer.
//
// Because all writes run on one goroutine, fn must not call Update (it would
// wait for itself), and a slow fn delays every writer behind it.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Store is a gatehouse.Store on one SQLite file.
type Store struct {
	path    string
	opts    options
	writeDB *sql.DB
	readDB  *sql.DB
	reads   *stmtCache
	w       *writer
	ckpt    *checkpointer

	mu     sync.RWMutex // guards closed against sends on w.queue
	closed bool

	updates atomic.Int64 // Update calls whose fn ran
	commits atomic.Int64 // successful COMMITs
}

var _ gatehouse.Store = (*Store)(nil)

type options struct {
	maxBatch    int
	commitDelay time.Duration
	readers     int
	busyTimeout time.Duration
}

// Option configures Open.
type Option func(*options)

// WithMaxBatch bounds how many Update calls share one transaction (default
// 256). 1 turns group commit off: one COMMIT, one fsync per Update.
func WithMaxBatch(n int) Option {
	return func(o *options) { o.maxBatch = max(1, n) }
}

// WithCommitDelay bounds how long the writer waits for more Updates to join
// a small batch when the previous batch held more than one (default 4ms; 0
// turns it off). It waits by yielding its processor to other goroutines, and
// only while they have work to run (see writer.gather): a lone writer never
// waits, nor does a writer that is itself the bottleneck. Under CPU-bound
// concurrent load a longer delay makes bigger batches: less CPU and fewer
// fsyncs per write, at the cost of up to the delay in each write's latency.
func WithCommitDelay(d time.Duration) Option {
	return func(o *options) { o.commitDelay = max(0, d) }
}

// WithReaders sets the size of the read connection pool (default
// 2×GOMAXPROCS, at least 4).
func WithReaders(n int) Option {
	return func(o *options) { o.readers = max(1, n) }
}

// WithBusyTimeout sets how long a connection waits for a lock held by another
// process (a backup, the sqlite3 shell) before failing (default 5s).
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) { o.busyTimeout = d }
}

// Open opens the database at path, creating it and its parent directories if
// needed, and migrates it to the schema this binary knows. It refuses a
// database whose schema is newer than that.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{maxBatch: 256, commitDelay: 4 * time.Millisecond, readers: max(4, 2*runtime.GOMAXPROCS(0)), busyTimeout: 5 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "sqlite database path %q must be a plain file path without ? or #", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
	}
	s := &Store{path: path, opts: o}
	var err error
	if s.writeDB, err = sql.Open("sqlite", dsn(path, o, false)); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s.writeDB.SetMaxOpenConns(1)
	s.writeDB.SetMaxIdleConns(1)
	s.writeDB.SetConnMaxLifetime(0)
	s.writeDB.SetConnMaxIdleTime(0)
	if err := s.start(); err != nil {
		s.writeDB.Close()
		if s.readDB != nil {
			s.readDB.Close()
		}
		return nil, err
	}
	return s, nil
}

func (s *Store) start() error {
	ctx := context.Background()
	conn, err := s.writeDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("open sqlite store %s: %w", s.path, err)
	}
	if err := migrate(ctx, conn); err != nil {
		conn.Close()
		return fmt.Errorf("open sqlite store %s: %w", s.path, err)
	}
	// The readers open after the writer has switched the file to WAL.
	if s.readDB, err = sql.Open("sqlite", dsn(s.path, s.opts, true)); err != nil {
		conn.Close()
		return fmt.Errorf("open sqlite store: %w", err)
	}
	s.readDB.SetMaxOpenConns(s.opts.readers)
	s.readDB.SetMaxIdleConns(s.opts.readers)
	s.readDB.SetConnMaxIdleTime(0)
	s.reads = newStmtCache(s.readDB)
	ckptDB, err := sql.Open("sqlite", dsn(s.path, s.opts, false))
	if err != nil {
		conn.Close()
		return fmt.Errorf("open sqlite store: %w", err)
	}
	ckptDB.SetMaxOpenConns(1)
	ckptDB.SetMaxIdleConns(1)
	ckptDB.SetConnMaxIdleTime(0)
	s.ckpt = newCheckpointer(ckptDB)
	s.w = newWriter(s, conn)
	go s.w.run()
	return nil
}

// dsn returns the driver's connection string. Every connection gets the
// same pragmas; readers are also query_only, so a bug cannot write past the
// writer's queue.
func dsn(path string, o options, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	// Savepoint journals of a large batch stay in memory instead of
	// spilling to a temporary file one page write at a time.
	q.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walAutoCheckpoint))
	}
	// A plain path, not a file: URI, so that the driver opens it as is.
	return path + "?" + q.Encode()
}

// Update implements gatehouse.Store. It queues fn for the writer goroutine
// and waits for the batch that ran it to commit. ctx is honoured while fn
// waits in the queue; once the writer has started fn, Update waits for the
// outcome, so that nil always means committed and an error always means not.
// If fn panics, its writes are rolled back and Update panics with the same
// value in the caller's goroutine.
func (s *Store) Update(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	r := &request{ctx: ctx, fn: fn, done: make(chan result, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed
	}
	select {
	case s.w.queue <- r:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	var res result
	select {
	case res = <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(queued, abandoned) {
			return ctx.Err()
		}
		res = <-r.done
	}
	if res.panicked {
		panic(res.panicVal)
	}
	return res.err
}

var errClosed = gatehouse.Errorf(gatehouse.EUnavailable, "the store is closed")

// Ready implements gatehouse.Store: the file is readable and at the schema
// version this binary knows.
func (s *Store) Ready(ctx context.Context) error {
	var v int
	if err := s.readDB.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("%w: %w", gatehouse.Errorf(gatehouse.EUnavailable, "the database cannot be read"), err)
	}
	if want := latestVersion(); v != want {
		return gatehouse.Errorf(gatehouse.EUnavailable, "the database schema is at version %d; this binary needs %d", v, want)
	}
	return nil
}

// Close waits for queued updates to finish and closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.w.queue)
	s.mu.Unlock()
	<-s.w.stopped
	return errors.Join(s.ckpt.close(), s.w.close(), s.readDB.Close(), s.writeDB.Close())
}

// Stats counts the work of the writer since Open.
type Stats struct {
	Updates int64 // Update calls whose fn ran, committed or not
	Commits int64 // transactions committed; Updates/Commits is the mean batch size
}

// Stats returns the writer's counters.
func (s *Store) Stats() Stats {
	return Stats{Updates: s.updates.Load(), Commits: s.commits.Load()}
}
