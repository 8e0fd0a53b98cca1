package postgres

import (
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

// GetEnrollments implements gatehouse.Tx: one statement for the whole set,
// rows locked until the transaction ends.
func (t *Tx) GetEnrollments(scope string, ids []string) (map[string]*gatehouse.Enrollment, error) {
	out := make(map[string]*gatehouse.Enrollment, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := t.tx.Query(t.ctx, `SELECT `+enrollmentColumns+` FROM enrollments WHERE scope = $1 AND id = ANY($2::text[]) FOR UPDATE`, scope, ids)
	if err != nil {
		return nil, t.fail("get enrollments", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEnrollment(rows)
		if err != nil {
			return nil, t.fail("get enrollments", err)
		}
		out[e.ID] = e
	}
	if err := rows.Err(); err != nil {
		return nil, t.fail("get enrollments", err)
	}
	return out, nil
}

// CreateEnrollments implements gatehouse.Tx: one statement whatever the
// number (arrays unnested server side), in a savepoint so that a conflict
// leaves nothing and keeps the transaction usable: one round trip.
func (t *Tx) CreateEnrollments(es []*gatehouse.Enrollment) error {
	n := len(es)
	if n == 0 {
		return nil
	}
	var (
		scopes, ids, types, attTypes, bodies, etags = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		enabled                                     = make([]bool, n)
		configs, tokenHashes, sealed                = make([][]byte, n), make([][]byte, n), make([][]byte, n)
		created, updated                            = make([]time.Time, n), make([]time.Time, n)
		registrations, uses                         = make([]int32, n), make([]int32, n)
	)
	for i, e := range es {
		body, err := enrollmentBody(e)
		if err != nil {
			return fmt.Errorf("create enrollments: encode: %w", err)
		}
		scopes[i], ids[i], types[i], attTypes[i], enabled[i], bodies[i] = e.Scope, e.ID, string(e.Type), string(e.Attestation.Type), e.Enabled, string(body)
		configs[i], tokenHashes[i], sealed[i] = nullBytes(e.InitialConfig), nullBytes(e.Attestation.TokenHash), nullBytes(e.SealedSecrets)
		etags[i], created[i], updated[i] = e.ETag, e.CreatedAt, e.UpdatedAt
		registrations[i], uses[i] = int32(e.Registrations), int32(e.Attestation.Uses)
	}
	// One batch with its savepoint (and what the pipe queued); the release
	// waits in the pipe for the next statement.
	b := &pgx.Batch{}
	b.Queue(`SAVEPOINT create_batch`)
	inserted := int64(-1) // until the count comes back
	b.Queue(`
		WITH e AS (
			INSERT INTO enrollments (`+enrollmentColumns+`)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::json[],
				$7::bytea[], $8::bytea[], $9::bytea[], $10::text[], $11::timestamptz[], $12::timestamptz[],
				$13::integer[], $14::integer[])
			ON CONFLICT DO NOTHING
			RETURNING 1
		)
		SELECT count(*) FROM e`,
		scopes, ids, types, attTypes, enabled, bodies, configs, tokenHashes, sealed, etags, created, updated, registrations, uses).
		QueryRow(func(row pgx.Row) error { return row.Scan(&inserted) })
	return t.sendCreateBatch(b, &inserted, n, "enrollments", es[0].Scope)
}
