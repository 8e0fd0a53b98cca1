package postgres

import (
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

// GetDevices implements gatehouse.Tx: one statement for the whole set,
// rows locked until the transaction ends.
func (t *Tx) GetDevices(scope string, ids []string) (map[string]*gatehouse.Device, error) {
	out := make(map[string]*gatehouse.Device, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := t.tx.Query(t.ctx, `SELECT `+deviceColumns+` FROM devices WHERE scope = $1 AND id = ANY($2::text[]) FOR UPDATE`, scope, ids)
	if err != nil {
		return nil, t.fail("get devices", err)
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, t.fail("get devices", err)
		}
		out[d.ID] = d
	}
	if err := rows.Err(); err != nil {
		return nil, t.fail("get devices", err)
	}
	return out, nil
}

// CreateDevices implements gatehouse.Tx: three statements whatever the
// number of devices (arrays unnested server side), in a savepoint so that
// a conflict part way leaves nothing and keeps the transaction usable, and
// one round trip for all of it.
func (t *Tx) CreateDevices(ds []*gatehouse.Device, changes []*gatehouse.StateChange) error {
	if len(ds) != len(changes) {
		return fmt.Errorf("create devices: %d devices but %d state changes", len(ds), len(changes))
	}
	if len(ds) == 0 {
		return nil
	}
	n := len(ds)
	var (
		scopes, ids, states, conns, enrollments, etags = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		tags                                           = make([]string, n)
		configs, reporteds                             = make([][]byte, n), make([][]byte, n)
		lastSeen                                       = make([]*time.Time, n)
		created, updated                               = make([]time.Time, n), make([]time.Time, n)
		tScopes, tIDs, tKeys, tValues                  []string
		hFrom, hTo, hActor, hReason                    = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		hTime                                          = make([]time.Time, n)
	)
	for i, d := range ds {
		js, keys, values, err := tagParams(d.Tags)
		if err != nil {
			return fmt.Errorf("create devices: %w", err)
		}
		scopes[i], ids[i], states[i], conns[i] = d.Scope, d.ID, string(d.State), string(d.Connection.Status)
		lastSeen[i], tags[i], configs[i], reporteds[i] = d.Connection.LastSeen, string(js), nonNil(d.Config), nonNil(d.Reported)
		enrollments[i], created[i], updated[i], etags[i] = d.Enrollment, d.CreatedAt, d.UpdatedAt, d.ETag
		for range keys {
			tScopes, tIDs = append(tScopes, d.Scope), append(tIDs, d.ID)
		}
		tKeys, tValues = append(tKeys, keys...), append(tValues, values...)
		c := changes[i]
		hFrom[i], hTo[i], hActor[i], hReason[i], hTime[i] = string(c.From), string(c.To), c.Actor, c.Reason, c.Time
	}
	// One batch (with the savepoint, and with what the pipe queued): the
	// devices, their tags and history. The tag and history rows cannot
	// conflict once every device is new; if one is not, all of it is rolled
	// back to the savepoint. Its release waits in the pipe for the next
	// statement.
	b := &pgx.Batch{}
	b.Queue(`SAVEPOINT create_batch`)
	inserted := int64(-1) // until the count comes back
	b.Queue(`
		WITH d AS (
			INSERT INTO devices (`+deviceColumns+`)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[],
				$7::bytea[], $8::bytea[], $9::text[], $10::timestamptz[], $11::timestamptz[], $12::text[])
			ON CONFLICT DO NOTHING
			RETURNING 1
		)
		SELECT count(*) FROM d`,
		scopes, ids, states, conns, lastSeen, tags, configs, reporteds, enrollments, created, updated, etags).
		QueryRow(func(row pgx.Row) error { return row.Scan(&inserted) })
	if len(tKeys) > 0 {
		b.Queue(`INSERT INTO device_tags (scope, device_id, key, value)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])`, tScopes, tIDs, tKeys, tValues)
	}
	b.Queue(`INSERT INTO device_history (scope, device_id, from_state, to_state, actor, reason, time)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])`,
		scopes, ids, hFrom, hTo, hActor, hReason, hTime)
	return t.sendCreateBatch(b, &inserted, n, "devices", ds[0].Scope)
}

// sendCreateBatch sends a batch create: b holds SAVEPOINT create_batch,
// the insert whose count of new rows lands in *inserted (-1 until it
// does), and its dependent rows. All n new: the savepoint's release goes
// with the next statement. Else the batch is rolled back to the savepoint
// and a conflict (some rows exist) or a missing row leaves the
// transaction usable, as the Tx contract says.
func (t *Tx) sendCreateBatch(b *pgx.Batch, inserted *int64, n int, what, scope string) error {
	err := t.tx.SendBatch(t.ctx, b).Close()
	if t.tx.failed != nil {
		return t.tx.failed // a write queued before failed: the savepoint was not reached
	}
	if err == nil && *inserted == int64(n) {
		t.tx.queue(queued{sql: `RELEASE SAVEPOINT create_batch`, check: execCheck("create " + what)})
		return nil
	}
	if _, rerr := t.tx.Exec(t.ctx, `ROLLBACK TO SAVEPOINT create_batch`); rerr != nil {
		return t.fail("create "+what, rerr)
	}
	if *inserted >= 0 && *inserted != int64(n) {
		// The rows after the count may have failed on the existing ones.
		return gatehouse.Errorf(gatehouse.EConflict, "%d of %d %s already exist in scope %q", int64(n)-*inserted, n, what, scope)
	}
	e := mapErr("create "+what, err)
	if gatehouse.ErrorCode(e) == gatehouse.EConflict || gatehouse.ErrorCode(e) == gatehouse.ENotFound {
		return e // rolled back to the savepoint: the transaction goes on
	}
	return t.check(e)
}
