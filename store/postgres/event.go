package postgres

import (
	"context"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

// AppendEvent takes the next number of the scope's sequence and writes the
// event in one statement. The upsert locks the scope's event_seqs row until
// the transaction ends, so concurrent writers of one scope commit in
// sequence order and a reader never sees event n+1 before event n; a
// rollback returns the number along with the event.
func (t *Tx) AppendEvent(e *gatehouse.Event) error {
	var data []byte
	if e.Data != nil {
		data = []byte(e.Data)
	}
	err := t.tx.QueryRow(t.ctx, `
		WITH next AS (
			INSERT INTO event_seqs AS s (scope, seq) VALUES ($1, 1)
			ON CONFLICT (scope) DO UPDATE SET seq = s.seq + 1
			RETURNING seq
		)
		INSERT INTO events (scope, seq, type, time, actor, subject, data)
		SELECT $1, next.seq, $2, $3, $4, $5, $6 FROM next
		RETURNING seq`,
		e.Scope, e.Type, e.Time, e.Actor, e.Subject, data).Scan(&e.Seq)
	if err != nil {
		return t.fail("append event", err)
	}
	return nil
}

func (s *Store) ListEvents(ctx context.Context, scope string, after int64, limit int) ([]*gatehouse.Event, error) {
	if limit <= 0 { // as in store/sqlite
		limit = gatehouse.MaxEventPage
	}
	rows, err := s.pool.Query(ctx, `
		SELECT scope, seq, type, time, actor, subject, data FROM events
		WHERE scope = $1 AND seq > $2 ORDER BY seq LIMIT $3`, scope, after, limit)
	if err != nil {
		return nil, mapErr("list events", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*gatehouse.Event, error) {
		e := &gatehouse.Event{}
		var data []byte
		if err := row.Scan(&e.Scope, &e.Seq, &e.Type, &e.Time, &e.Actor, &e.Subject, &data); err != nil {
			return nil, err
		}
		e.Time = e.Time.UTC()
		if data != nil {
			e.Data = data
		}
		return e, nil
	})
	return events, mapErr("list events", err)
}
