package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gatehouse-iot/gatehouse"
)

// ListEvents implements gatehouse.Reader. Events are only ever written by
// the one writer and become visible a whole transaction at a time, so a
// reader cannot see seq n+1 without n. limit <= 0 means MaxEventPage.
func (s *Store) ListEvents(ctx context.Context, scope string, after int64, limit int) ([]*gatehouse.Event, error) {
	if limit <= 0 {
		limit = gatehouse.MaxEventPage
	}
	rows, err := s.reads.query(ctx, `SELECT seq, type, time, actor, subject, data FROM events
		WHERE scope = ? AND seq > ? ORDER BY seq LIMIT ?`, scope, after, limit)
	if err != nil {
		return nil, storeError("list events", err, "events", "")
	}
	defer rows.Close()
	var out []*gatehouse.Event
	for rows.Next() {
		e := gatehouse.Event{Scope: scope}
		var us int64
		var data []byte
		if err := rows.Scan(&e.Seq, &e.Type, &us, &e.Actor, &e.Subject, &data); err != nil {
			return nil, storeError("list events", err, "events", "")
		}
		e.Time = fromMicros(us)
		if len(data) > 0 {
			e.Data = data
		}
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError("list events", err, "events", "")
	}
	return out, nil
}

// AppendEvent takes the next number from the scope's counter row. The
// counter is written in the same transaction (and savepoint) as the event,
// so a rollback returns the number too, and the next event fills it.
func (t *tx) AppendEvent(e *gatehouse.Event) error {
	seq, err := t.w.nextSeq(e.Scope)
	if err != nil {
		return storeError("append event", err, fmt.Sprintf("event sequence of scope %q", e.Scope), "")
	}
	var data any
	if len(e.Data) > 0 {
		data = []byte(e.Data)
	}
	_, err = t.q().exec(bg, `INSERT INTO events (scope, seq, type, time, actor, subject, data) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.Scope, seq, e.Type, micros(e.Time), e.Actor, e.Subject, data)
	if err != nil {
		// Read the sequence from the database again next time, in case
		// something other than this writer appended (it never should).
		delete(t.w.seqs, e.Scope)
		return storeError("append event", err, fmt.Sprintf("event %d of scope %q", seq, e.Scope), "")
	}
	e.Seq = seq
	t.w.fnSeqs[e.Scope] = seq
	return nil
}

// nextSeq returns the sequence number the next event of scope takes: one
// past the last one this fn, this batch or the database holds.
func (w *writer) nextSeq(scope string) (int64, error) {
	if seq, ok := w.fnSeqs[scope]; ok {
		return seq + 1, nil
	}
	if seq, ok := w.batchSeqs[scope]; ok {
		return seq + 1, nil
	}
	if seq, ok := w.seqs[scope]; ok {
		return seq + 1, nil
	}
	var seq int64
	err := w.stmts.queryRow(bg, `SELECT seq FROM event_seqs WHERE scope = ?`, scope).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	w.seqs[scope] = seq
	return seq + 1, nil
}
