package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

const enrollmentColumns = `scope, id, type, attestation_type, enabled, body, initial_config, token_hash, sealed_secrets,
	etag, created_at, updated_at, registrations, uses`

// enrollmentBody returns the JSON kept in enrollments.body: e without
// InitialConfig, which has a column of its own so that it comes back byte
// for byte (encoding/json would compact it, and refuse it if it were not
// JSON), and without the counts, which have theirs.
func enrollmentBody(e *gatehouse.Enrollment) ([]byte, error) {
	c := *e
	c.InitialConfig = nil
	c.Registrations, c.Attestation.Uses = 0, 0
	return json.Marshal(&c)
}

// enrollmentArgs returns the values of enrollmentColumns for e.
func enrollmentArgs(e *gatehouse.Enrollment) ([]any, error) {
	body, err := enrollmentBody(e)
	if err != nil {
		return nil, err
	}
	// body goes as a string: pgx sends a string to a json parameter as is.
	return []any{e.Scope, e.ID, string(e.Type), string(e.Attestation.Type), e.Enabled, string(body),
		nullBytes(e.InitialConfig), nullBytes(e.Attestation.TokenHash), nullBytes(e.SealedSecrets),
		e.ETag, e.CreatedAt, e.UpdatedAt, e.Registrations, e.Attestation.Uses}, nil
}

func scanEnrollment(row pgx.Row) (*gatehouse.Enrollment, error) {
	var scope, id, typ, attType, etag string
	var enabled bool
	var body, config, tokenHash, sealed []byte
	var created, updated time.Time
	var registrations, uses int
	if err := row.Scan(&scope, &id, &typ, &attType, &enabled, &body, &config, &tokenHash, &sealed,
		&etag, &created, &updated, &registrations, &uses); err != nil {
		return nil, err
	}
	var e gatehouse.Enrollment
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("decode enrollment %q in scope %q: %w", id, scope, err)
	}
	e.InitialConfig = nilIfEmpty(config)
	e.Attestation.TokenHash = nilIfEmpty(tokenHash)
	e.SealedSecrets = nilIfEmpty(sealed)
	e.Registrations, e.Attestation.Uses = registrations, uses
	// JSON keeps a time's offset; the store hands out UTC.
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	e.ExpiresAt, e.Attestation.ExpiresAt = utcPtr(e.ExpiresAt), utcPtr(e.Attestation.ExpiresAt)
	return &e, nil
}

func (s *Store) GetEnrollment(ctx context.Context, scope, id string) (*gatehouse.Enrollment, error) {
	return getEnrollment(ctx, s.pool, scope, id, "")
}

// GetEnrollment reads an enrollment and locks its row until the transaction
// ends.
func (t *Tx) GetEnrollment(scope, id string) (*gatehouse.Enrollment, error) {
	e, err := getEnrollment(t.ctx, t.tx, scope, id, " FOR UPDATE")
	return e, t.check(err)
}

func getEnrollment(ctx context.Context, q querier, scope, id, lock string) (*gatehouse.Enrollment, error) {
	e, err := scanEnrollment(q.QueryRow(ctx, `SELECT `+enrollmentColumns+` FROM enrollments WHERE scope = $1 AND id = $2`+lock, scope, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "enrollment %q not found", id)
	}
	return e, mapErr("get enrollment", err)
}

func (t *Tx) CreateEnrollment(e *gatehouse.Enrollment) error {
	args, err := enrollmentArgs(e)
	if err != nil {
		return fmt.Errorf("create enrollment: encode: %w", err)
	}
	tag, err := t.tx.Exec(t.ctx, `INSERT INTO enrollments (`+enrollmentColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING`, args...)
	if err != nil {
		return t.fail("create enrollment", err)
	}
	if tag.RowsAffected() == 0 {
		return gatehouse.Errorf(gatehouse.EConflict, "enrollment %q already exists", e.ID)
	}
	return nil
}

// UpdateEnrollment replaces the row if its etag is prevETag. In read
// committed, an UPDATE that finds the row changed by a concurrent
// transaction checks its WHERE again on the new version, so a stale etag
// never overwrites a newer write.
func (t *Tx) UpdateEnrollment(e *gatehouse.Enrollment, prevETag string) error {
	args, err := enrollmentArgs(e)
	if err != nil {
		return fmt.Errorf("update enrollment: encode: %w", err)
	}
	tag, err := t.tx.Exec(t.ctx, `UPDATE enrollments SET type = $3, attestation_type = $4, enabled = $5, body = $6,
		initial_config = $7, token_hash = $8, sealed_secrets = $9, etag = $10, created_at = $11, updated_at = $12,
		registrations = $13, uses = $14
		WHERE scope = $1 AND id = $2 AND etag = $15`, append(args, prevETag)...)
	if err != nil {
		return t.fail("update enrollment", err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	var etag string
	err = t.tx.QueryRow(t.ctx, `SELECT etag FROM enrollments WHERE scope = $1 AND id = $2`, e.Scope, e.ID).Scan(&etag)
	if errors.Is(err, pgx.ErrNoRows) {
		return gatehouse.Errorf(gatehouse.ENotFound, "enrollment %q not found", e.ID)
	} else if err != nil {
		return t.fail("update enrollment", err)
	}
	return gatehouse.Errorf(gatehouse.EPreconditionFailed, "enrollment %q has changed since it was read (etag %q, not %q); read it again and retry", e.ID, etag, prevETag)
}

// CountEnrollmentUse adds to the counts with one UPDATE, which holds the
// row's lock from here to the commit: the end of a registration, so that
// concurrent registrations of one enrollment queue only for their last
// statement. In read committed, an UPDATE that waited for another checks
// its WHERE again on the row that one left, so the limits hold.
func (t *Tx) CountEnrollmentUse(u gatehouse.EnrollmentUse) error {
	return t.write(t.countEnrollmentUse(u), nil)
}

func (t *Tx) countEnrollmentUse(u gatehouse.EnrollmentUse) queued {
	return queued{sql: `UPDATE enrollments SET registrations = registrations + $4, uses = uses + $5
		WHERE scope = $1 AND id = $2 AND etag = $3
			AND ($4 = 0 OR $6 <= 0 OR registrations + $4 <= $6) AND ($5 = 0 OR $7 <= 0 OR uses + $5 <= $7)`,
		args:      []any{u.Scope, u.ID, u.ETag, u.Registrations, u.Uses, u.MaxRegistrations, u.MaxUses},
		refusable: true,
		check: rowsCheck("count enrollment use", func() error {
			// Why: a second statement, which sees what the UPDATE waited
			// for (read committed), after the batch.
			return explain(func() error {
				var etag string
				var registrations, uses int
				err := t.tx.QueryRow(t.ctx, `SELECT etag, registrations, uses FROM enrollments WHERE scope = $1 AND id = $2`, u.Scope, u.ID).
					Scan(&etag, &registrations, &uses)
				if errors.Is(err, pgx.ErrNoRows) {
					return gatehouse.Errorf(gatehouse.ENotFound, "enrollment %q not found", u.ID)
				} else if err != nil {
					return mapErr("count enrollment use", err)
				}
				return u.Refused(etag, registrations, uses)
			})
		})}
}

// DeleteEnrollment removes the row; registration records naming the
// enrollment stay.
func (t *Tx) DeleteEnrollment(scope, id string) error {
	tag, err := t.tx.Exec(t.ctx, `DELETE FROM enrollments WHERE scope = $1 AND id = $2`, scope, id)
	if err != nil {
		return t.fail("delete enrollment", err)
	}
	if tag.RowsAffected() == 0 {
		return gatehouse.Errorf(gatehouse.ENotFound, "enrollment %q not found", id)
	}
	return nil
}

func (s *Store) ListEnrollments(ctx context.Context, f gatehouse.EnrollmentFilter) ([]*gatehouse.Enrollment, error) {
	query, args := listEnrollmentsQuery(f)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, mapErr("list enrollments", err)
	}
	es, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*gatehouse.Enrollment, error) { return scanEnrollment(row) })
	return es, mapErr("list enrollments", err)
}

// listEnrollmentsQuery builds the SQL for f, in ID order after f.After. A
// type and an attestation type together walk (scope, type,
// attestation_type, id) in page order; otherwise the planner picks between
// the primary key and that index by its statistics.
func listEnrollmentsQuery(f gatehouse.EnrollmentFilter) (string, []any) {
	var b strings.Builder
	args := []any{f.Scope, f.After}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	b.WriteString(`SELECT ` + enrollmentColumns + ` FROM enrollments WHERE scope = $1 AND id > $2`)
	if f.Type != "" {
		b.WriteString(` AND type = ` + arg(string(f.Type)))
	}
	if f.Attestation != "" {
		b.WriteString(` AND attestation_type = ` + arg(string(f.Attestation)))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	b.WriteString(" ORDER BY id LIMIT " + arg(limit))
	return b.String(), args
}
