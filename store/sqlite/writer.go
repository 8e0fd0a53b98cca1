package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// Request states. The writer claims a queued request before running it; a
// caller whose ctx ends first abandons it instead. Whoever wins the CAS
// decides, so a request is either never run or its caller waits for its
// outcome.
const (
	queued int32 = iota
	claimed
	abandoned
)

type request struct {
	ctx   context.Context
	fn    func(gatehouse.Tx) error
	state atomic.Int32
	done  chan result // buffered: the writer never blocks on a caller
}

type result struct {
	err      error
	panicked bool
	panicVal any
}

// writer owns the one write connection and runs every Update.
type writer struct {
	s       *Store
	conn    *sql.Conn
	stmts   *stmtCache
	queue   chan *request
	stopped chan struct{}

	// Event sequences, kept here instead of read-modify-written in
	// event_seqs by every AppendEvent: the writer is the only one to
	// append. seqs holds the committed last sequence of each scope it has
	// seen; batchSeqs the batch's (written to event_seqs once, just before
	// COMMIT); fnSeqs the running fn's, merged into batchSeqs when its
	// savepoint is released and dropped when it is rolled back.
	seqs      map[string]int64
	batchSeqs map[string]int64
	fnSeqs    map[string]int64

	lastBatch int         // how many requests the previous batch took
	delay     *time.Timer // the commit delay's, stopped when idle

	// failing: a request's fn failed lately, so batches run each fn in a
	// savepoint (runBatch) until one has no failure; else they run without
	// (runOptimistic). failed: a fn of the current batch failed.
	failing, failed bool
}

// bigBatch is the batch size at which the commit delay ends: the commit's
// fixed costs are then spread thin already, and a writer that finds this
// many requests queued is itself the bottleneck, where a pause would only
// lower the rate every write waits on.
const bigBatch = 16

// gather is the commit delay. When the previous batch had company but this
// one is small, concurrent writers are about, so give them a moment to join:
// a bigger batch spends less CPU per write (one BEGIN, one COMMIT, one write
// of each page it dirties, one fsync for all). It waits until the batch holds
// bigBatch requests or commitDelay has passed.
func (w *writer) gather(batch []*request) []*request {
	d := w.s.opts.commitDelay
	if d <= 0 {
		return batch
	}
	w.delay.Reset(d)
	defer w.delay.Stop()
	for len(batch) < min(bigBatch, w.s.opts.maxBatch) {
		select {
		case r, ok := <-w.queue:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		case <-w.delay.C:
			return batch
		}
	}
	return batch
}

func newWriter(s *Store, conn *sql.Conn) *writer {
	return &writer{
		s:       s,
		conn:    conn,
		stmts:   newStmtCache(conn),
		queue:   make(chan *request, s.opts.maxBatch),
		stopped: make(chan struct{}),
		delay:   newStoppedTimer(),

		seqs:      map[string]int64{},
		batchSeqs: map[string]int64{},
		fnSeqs:    map[string]int64{},
	}
}

// run takes whatever is queued, up to maxBatch, and runs it as one batch. It
// never waits for a batch to fill: a lone Update runs at once.
func (w *writer) run() {
	defer close(w.stopped)
	batch := make([]*request, 0, w.s.opts.maxBatch)
	for {
		idle := time.Now()
		r, ok := <-w.queue
		if !ok {
			return
		}
		if time.Since(idle) > w.s.opts.commitDelay {
			w.lastBatch = 0 // quiet for a while: this one may be alone
		}
		batch = append(batch[:0], r)
	fill:
		for len(batch) < w.s.opts.maxBatch {
			select {
			case r, ok := <-w.queue:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if w.lastBatch > 1 && len(batch) < min(bigBatch, w.s.opts.maxBatch) {
			batch = w.gather(batch)
		}
		w.lastBatch = len(batch)
		live := batch[:0]
		for _, r := range batch {
			if r.state.CompareAndSwap(queued, claimed) {
				live = append(live, r)
			}
		}
		safe := w.failing
		w.failed = false
		for len(live) > 0 {
			if w.failing {
				live = w.runBatch(live)
			} else {
				live = w.runOptimistic(live)
			}
		}
		if safe && !w.failed {
			w.failing = false
		}
	}
}

func (w *writer) close() error {
	return errors.Join(w.stmts.close(), w.conn.Close())
}

func (w *writer) exec(query string) error {
	// Prepared once: SAVEPOINT/RELEASE run for every request of every batch.
	_, err := w.stmts.exec(context.Background(), query)
	return err
}

// runOptimistic runs batch in one transaction, without a savepoint for each
// fn, and answers every request in it. A savepoint costs two statements and a
// copy of every page fn touches, for every request of every batch, and it is
// needed only when a fn fails: then runOptimistic rolls the whole
// transaction back, answers the failed request with its error (its fn ran on
// the writes of the ones before it, as it would have with a savepoint) and
// returns the others, run or not, for runBatch to run again with
// savepoints. A fn may run twice, as under PostgreSQL's serialization
// retries; only one run commits.
func (w *writer) runOptimistic(batch []*request) (rest []*request) {
	if !w.begin(batch) {
		return nil
	}
	var ran []*request
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- result{err: err}
			continue
		}
		w.s.updates.Add(1)
		clear(w.fnSeqs)
		res := w.call(r.fn)
		if res.err != nil || res.panicked {
			clear(w.fnSeqs)
			clear(w.batchSeqs)
			w.exec(`ROLLBACK`)
			w.failing, w.failed = true, true
			w.s.updates.Add(-int64(len(ran))) // they run again
			r.done <- res
			return append(ran, batch[i+1:]...)
		}
		ran = append(ran, r)
		for scope, seq := range w.fnSeqs {
			w.batchSeqs[scope] = seq
		}
		clear(w.fnSeqs)
	}
	w.commit(ran)
	return nil
}

// begin starts the batch's transaction, or fails every request of batch
// and returns false.
func (w *writer) begin(batch []*request) bool {
	if err := w.exec(`BEGIN IMMEDIATE`); err != nil {
		err = fmt.Errorf("%w: %w", gatehouse.Errorf(gatehouse.EUnavailable, "the database is not writable"), err)
		for _, r := range batch {
			r.done <- result{err: err}
		}
		return false
	}
	clear(w.batchSeqs)
	return true
}

// commit writes the batch's event sequences and commits the transaction,
// then answers the requests that ran: nil, or the failure for all of them.
func (w *writer) commit(ran []*request) {
	fail := func(err error) {
		clear(w.batchSeqs)
		w.exec(`ROLLBACK`)
		err = fmt.Errorf("%w: %w", gatehouse.Errorf(gatehouse.EUnavailable, "the write was not committed; retry"), err)
		for _, r := range ran {
			r.done <- result{err: err}
		}
	}
	if len(ran) == 0 {
		w.exec(`ROLLBACK`)
		return
	}
	for scope, seq := range w.batchSeqs {
		if _, err := w.stmts.exec(bg, `INSERT INTO event_seqs (scope, seq) VALUES (?, ?)
			ON CONFLICT (scope) DO UPDATE SET seq = excluded.seq`, scope, seq); err != nil {
			fail(err)
			return
		}
	}
	if err := w.exec(`COMMIT`); err != nil {
		fail(err)
		return
	}
	for scope, seq := range w.batchSeqs {
		w.seqs[scope] = seq
	}
	w.s.commits.Add(1)
	w.s.ckpt.committed()
	for _, r := range ran {
		r.done <- result{}
	}
}

// runBatch runs batch in one transaction, each fn in a savepoint, and
// answers every request in it. If
// the transaction breaks part way (an I/O error, say, makes SQLite roll it
// back), the requests already run fail and runBatch returns the ones it has
// not started, for a fresh transaction.
func (w *writer) runBatch(batch []*request) (rest []*request) {
	// Statements run without the callers' contexts: an interrupted statement
	// can roll back the whole transaction, and with it the other callers'
	// work. ctx counts while a request waits, and is checked before it runs.
	if !w.begin(batch) {
		return nil
	}
	var ran []*request
	fail := func(err error) {
		clear(w.fnSeqs)
		clear(w.batchSeqs)
		w.exec(`ROLLBACK`)
		err = fmt.Errorf("%w: %w", gatehouse.Errorf(gatehouse.EUnavailable, "the write was not committed; retry"), err)
		for _, r := range ran {
			r.done <- result{err: err}
		}
	}
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- result{err: err}
			continue
		}
		if err := w.exec(`SAVEPOINT fn`); err != nil {
			ran = append(ran, r)
			fail(err)
			return batch[i+1:]
		}
		w.s.updates.Add(1)
		clear(w.fnSeqs)
		res := w.call(r.fn)
		if res.err != nil || res.panicked {
			w.failed = true
			clear(w.fnSeqs)
			if err := w.exec(`ROLLBACK TO fn`); err != nil {
				// The transaction is gone, and this fn's writes with it: its
				// own outcome stands, the others' do not.
				r.done <- res
				fail(err)
				return batch[i+1:]
			}
			if err := w.exec(`RELEASE fn`); err != nil {
				r.done <- res
				fail(err)
				return batch[i+1:]
			}
			// Nothing of fn will commit, so its caller need not wait.
			r.done <- res
			continue
		}
		ran = append(ran, r)
		if err := w.exec(`RELEASE fn`); err != nil {
			fail(err)
			return batch[i+1:]
		}
		for scope, seq := range w.fnSeqs {
			w.batchSeqs[scope] = seq
		}
		clear(w.fnSeqs)
	}
	w.commit(ran)
	return nil
}

// call runs fn and turns a panic into a result, so that the writer survives
// it and the caller can re-panic.
func (w *writer) call(fn func(gatehouse.Tx) error) (res result) {
	defer func() {
		if v := recover(); v != nil {
			res = result{panicked: true, panicVal: v}
		}
	}()
	return result{err: fn(&tx{w: w})}
}

func newStoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
