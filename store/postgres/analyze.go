package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// A table PostgreSQL has never analyzed has no column statistics, and the
// planner then takes an equality on scope to match 0.5 % of the rows. A
// lookup by (scope, id) costs the same through the primary key as through
// any other index that starts with scope and holds id further on
// (devices_enrollment_idx (scope, enrollment, id), credentials_device_idx
// (scope, device_id, id), ...), and the planner may take the other one,
// which reads every entry of the scope. Each connection keeps the generic
// plan it made (pgx prepares every statement, and so does PostgreSQL's own
// foreign-key check) until the table is analyzed. Autovacuum analyzes a
// table after its first 50 rows, but only at its next round (up to a
// minute, autovacuum_naptime), so on a fresh database every registration
// read all the scope's devices for that long: three such lookups per registration (the device's read, the
// history row's guard and its foreign-key check), about 75 buffer reads
// instead of 8 at 5,000 devices, and growing with the scope (see
// docs/benchmarks.md, PostgreSQL, "where PostgreSQL's CPU per registration went").
//
// Analyzing at once does not help while a table is empty (the plans then
// scan it whole), so the store analyzes such a table itself once it holds
// some rows: every analyzeCheckEvery commits it looks for the keyTables
// never analyzed, and analyzes those of analyzeMinPages or more. Once all
// of them have been analyzed (by it or by autovacuum) it stops looking.
// Each node does this on its own; a second ANALYZE waits for the first and
// costs a few milliseconds.

// keyTables are the tables read by (scope, id) on hot paths that have other
// indexes starting with scope and holding id.
var keyTables = []string{"devices", "credentials"}

const (
	analyzeCheckEvery = 128
	// analyzeMinPages is about 700 devices: enough rows that the plans
	// made from the statistics read through an index, not the whole table.
	analyzeMinPages = 16
)

// firstAnalyze is the state of the store's one-off ANALYZE of keyTables.
type firstAnalyze struct {
	commits atomic.Int64
	done    atomic.Bool
	running atomic.Bool
	ctx     context.Context
	stop    context.CancelFunc
	mu      sync.Mutex // guards closed and wg.Add against Close's wg.Wait
	closed  bool
	wg      sync.WaitGroup
}

// committed notes a commit and, every analyzeCheckEvery, starts a check in
// the background unless one is running or none is needed.
func (s *Store) committed() {
	a := &s.analyze
	if a.done.Load() || a.commits.Add(1)%analyzeCheckEvery != 0 || !a.running.CompareAndSwap(false, true) {
		return
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		a.running.Store(false)
		return
	}
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		defer a.running.Store(false)
		ctx, cancel := context.WithTimeout(a.ctx, time.Minute)
		defer cancel()
		// An error (the database away, a user that may not ANALYZE) only
		// leaves the job to autovacuum; the next check tries again.
		done, _ := s.analyzeKeyTables(ctx)
		if done {
			a.done.Store(true)
		}
	}()
}

// analyzeKeyTables analyzes the keyTables never analyzed that have
// analyzeMinPages or more, and reports whether none is left unanalyzed.
// pg_class.reltuples is -1 for a table never vacuumed or analyzed
// (PostgreSQL 14 and later; on older servers this finds nothing to do).
func (s *Store) analyzeKeyTables(ctx context.Context) (done bool, err error) {
	rows, err := s.pool.Query(ctx, `
		SELECT c.relname, pg_relation_size(c.oid) >= $2 * current_setting('block_size')::bigint
		FROM pg_class c
		WHERE c.oid IN (SELECT to_regclass(quote_ident(t)) FROM unnest($1::text[]) AS t) AND c.reltuples < 0`,
		keyTables, analyzeMinPages)
	if err != nil {
		return false, err
	}
	var large []string
	pending := 0
	var name string
	var big bool
	if _, err := pgx.ForEachRow(rows, []any{&name, &big}, func() error {
		if big {
			large = append(large, name)
		} else {
			pending++
		}
		return nil
	}); err != nil {
		return false, err
	}
	for _, t := range large {
		if _, err := s.pool.Exec(ctx, `ANALYZE `+pgx.Identifier{t}.Sanitize()); err != nil {
			return false, err
		}
	}
	return pending == 0, nil
}
