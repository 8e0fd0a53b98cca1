package postgres

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

// Events take the next numbers of the scope's sequence from its event_seqs
// row. The upsert locks the row until the transaction ends, so concurrent
// writers of one scope commit in sequence order and a reader never sees
// event n+1 before event n; a rollback returns the numbers along with the
// events.
//
// AppendEvent implements gatehouse.Tx. The event is written, and numbered,
// when fn has returned (flushEvents), in COMMIT's batch: the scope's
// counter row, which keeps the sequence gap-free and in commit order, is
// then locked only from there to the end of COMMIT, not through all of fn,
// so concurrent writers to one scope overlap everything else. e.Seq is set
// when Update commits.
func (t *Tx) AppendEvent(e *gatehouse.Event) error {
	t.events = append(t.events, e)
	return nil
}

// flushEvents queues the statements that number and write the events fn
// appended: per scope, one counter update for all of them and one insert,
// scopes in order (so that transactions appending to several lock their
// counters in one order). They cannot refuse, so COMMIT goes in the same
// batch.
func (t *Tx) flushEvents() {
	if len(t.events) == 0 {
		return
	}
	byScope := map[string][]*gatehouse.Event{}
	for _, e := range t.events {
		byScope[e.Scope] = append(byScope[e.Scope], e)
	}
	for _, scope := range slices.Sorted(maps.Keys(byScope)) {
		evs := byScope[scope]
		types := make([]string, len(evs))
		times := make([]time.Time, len(evs))
		actors := make([]string, len(evs))
		subjects := make([]string, len(evs))
		datas := make([][]byte, len(evs))
		for i, e := range evs {
			types[i], times[i], actors[i], subjects[i] = e.Type, e.Time, e.Actor, e.Subject
			if e.Data != nil {
				datas[i] = []byte(e.Data)
			}
		}
		// One statement: take n numbers, write the n events in append
		// order (ordinality 1..n after the counter's old value).
		t.tx.queue(queued{sql: `
			WITH next AS (
				INSERT INTO event_seqs AS s (scope, seq) VALUES ($1, $2)
				ON CONFLICT (scope) DO UPDATE SET seq = s.seq + $2
				RETURNING seq
			), ins AS (
				INSERT INTO events (scope, seq, type, time, actor, subject, data)
				SELECT $1, next.seq - $2 + e.ord, e.type, e.time, e.actor, e.subject, e.data
				FROM next, unnest($3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::bytea[])
					WITH ORDINALITY AS e(type, time, actor, subject, data, ord)
				RETURNING seq
			)
			SELECT min(seq) FROM ins`,
			args: []any{scope, len(evs), types, times, actors, subjects, datas},
			check: func(br pgx.BatchResults) error {
				var first int64
				if err := br.QueryRow().Scan(&first); err != nil {
					return mapErr("append event", err)
				}
				for i, e := range evs {
					e.Seq = first + int64(i)
				}
				return nil
			}})
	}
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
