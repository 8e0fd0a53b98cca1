package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

const enrollmentColumns = `scope, id, type, attestation_type, enabled, body, initial_config, token_hash, sealed_secrets,
	etag, created_at, updated_at, registrations, uses`

// enrollmentValues is how many values enrollmentColumns has.
const enrollmentValues = 14

// enrollmentArgs returns the values of enrollmentColumns for e.
func enrollmentArgs(e *gatehouse.Enrollment) ([]any, error) {
	body, err := enrollmentBody(e)
	if err != nil {
		return nil, err
	}
	return []any{e.Scope, e.ID, string(e.Type), string(e.Attestation.Type), e.Enabled, body,
		nullBytes(e.InitialConfig), nullBytes(e.Attestation.TokenHash), nullBytes(e.SealedSecrets),
		e.ETag, micros(e.CreatedAt), micros(e.UpdatedAt), e.Registrations, e.Attestation.Uses}, nil
}

func enrollmentName(scope, id string) string {
	return fmt.Sprintf("enrollment %q in scope %q", id, scope)
}

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

func scanEnrollment(sc scanner) (*gatehouse.Enrollment, error) {
	var scope, id, typ, attType, etag string
	var enabled bool
	var body, config, tokenHash, sealed []byte
	var created, updated int64
	var registrations, uses int
	if err := sc.Scan(&scope, &id, &typ, &attType, &enabled, &body, &config, &tokenHash, &sealed,
		&etag, &created, &updated, &registrations, &uses); err != nil {
		return nil, err
	}
	var e gatehouse.Enrollment
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("decode %s: %w", enrollmentName(scope, id), err)
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

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func getEnrollment(ctx context.Context, c *stmtCache, scope, id string) (*gatehouse.Enrollment, error) {
	e, err := scanEnrollment(c.queryRow(ctx, `SELECT `+enrollmentColumns+` FROM enrollments WHERE scope = ? AND id = ?`, scope, id))
	if err != nil {
		return nil, storeError("get enrollment", err, enrollmentName(scope, id), "")
	}
	return e, nil
}

// GetEnrollment implements gatehouse.Reader.
func (s *Store) GetEnrollment(ctx context.Context, scope, id string) (*gatehouse.Enrollment, error) {
	return getEnrollment(ctx, s.reads, scope, id)
}

// GetEnrollment implements gatehouse.Tx. The single writer is the lock.
func (t *tx) GetEnrollment(scope, id string) (*gatehouse.Enrollment, error) {
	return getEnrollment(bg, t.q(), scope, id)
}

func (t *tx) CreateEnrollment(e *gatehouse.Enrollment) error {
	args, err := enrollmentArgs(e)
	if err != nil {
		return fmt.Errorf("create enrollment: encode: %w", err)
	}
	_, err = t.q().exec(bg, `INSERT INTO enrollments (`+enrollmentColumns+`) VALUES `+rowsOf(1, enrollmentValues), args...)
	return storeError("create enrollment", err, enrollmentName(e.Scope, e.ID), "")
}

// UpdateEnrollment implements gatehouse.Tx: one UPDATE guarded by the etag,
// and a second look only when it changed nothing, to tell a stale etag from
// a missing enrollment.
func (t *tx) UpdateEnrollment(e *gatehouse.Enrollment, prevETag string) error {
	name := enrollmentName(e.Scope, e.ID)
	args, err := enrollmentArgs(e)
	if err != nil {
		return fmt.Errorf("update enrollment: encode: %w", err)
	}
	res, err := t.q().exec(bg, `UPDATE enrollments SET type = ?3, attestation_type = ?4, enabled = ?5, body = ?6,
		initial_config = ?7, token_hash = ?8, sealed_secrets = ?9, etag = ?10, created_at = ?11, updated_at = ?12,
		registrations = ?13, uses = ?14
		WHERE scope = ?1 AND id = ?2 AND etag = ?15`, append(args, prevETag)...)
	if err != nil {
		return storeError("update enrollment", err, name, "")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return storeError("update enrollment", err, name, "")
	}
	if n > 0 {
		return nil
	}
	return t.enrollmentChanged("update enrollment", e.Scope, e.ID, prevETag)
}

// enrollmentChanged tells why a write guarded by prevETag changed nothing:
// ENotFound, or EPreconditionFailed with the etag the enrollment has.
func (t *tx) enrollmentChanged(op, scope, id, prevETag string) error {
	name := enrollmentName(scope, id)
	var etag string
	if err := t.q().queryRow(bg, `SELECT etag FROM enrollments WHERE scope = ? AND id = ?`, scope, id).Scan(&etag); err != nil {
		return storeError(op, err, name, "")
	}
	return gatehouse.Errorf(gatehouse.EPreconditionFailed, "%s has changed since it was read (etag %q, not %q); read it again and retry", name, etag, prevETag)
}

// CountEnrollmentUse implements gatehouse.Tx: one UPDATE that checks the
// etag and the limits, and a second look only when it changed nothing.
func (t *tx) CountEnrollmentUse(u gatehouse.EnrollmentUse) error {
	const op = "count enrollment use"
	res, err := t.q().exec(bg, `UPDATE enrollments SET registrations = registrations + ?4, uses = uses + ?5
		WHERE scope = ?1 AND id = ?2 AND etag = ?3
			AND (?4 = 0 OR ?6 <= 0 OR registrations + ?4 <= ?6) AND (?5 = 0 OR ?7 <= 0 OR uses + ?5 <= ?7)`,
		u.Scope, u.ID, u.ETag, u.Registrations, u.Uses, u.MaxRegistrations, u.MaxUses)
	if err != nil {
		return storeError(op, err, enrollmentName(u.Scope, u.ID), "")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return storeError(op, err, enrollmentName(u.Scope, u.ID), "")
	}
	if n > 0 {
		return nil
	}
	var etag string
	var registrations, uses int
	err = t.q().queryRow(bg, `SELECT etag, registrations, uses FROM enrollments WHERE scope = ? AND id = ?`, u.Scope, u.ID).
		Scan(&etag, &registrations, &uses)
	if err != nil {
		return storeError(op, err, enrollmentName(u.Scope, u.ID), "")
	}
	return u.Refused(etag, registrations, uses)
}

// DeleteEnrollment implements gatehouse.Tx. Registration records naming
// the enrollment stay.
func (t *tx) DeleteEnrollment(scope, id string) error {
	res, err := t.q().exec(bg, `DELETE FROM enrollments WHERE scope = ? AND id = ?`, scope, id)
	if err != nil {
		return storeError("delete enrollment", err, enrollmentName(scope, id), "")
	}
	return mustAffect(res, "delete enrollment", enrollmentName(scope, id))
}

// ListEnrollments implements gatehouse.Reader.
func (s *Store) ListEnrollments(ctx context.Context, f gatehouse.EnrollmentFilter) ([]*gatehouse.Enrollment, error) {
	query, args := enrollmentQuery(f)
	rows, err := s.reads.query(ctx, query, args...)
	if err != nil {
		return nil, storeError("list enrollments", err, "enrollments", "")
	}
	defer rows.Close()
	var out []*gatehouse.Enrollment
	for rows.Next() {
		e, err := scanEnrollment(rows)
		if err != nil {
			return nil, storeError("list enrollments", err, "enrollments", "")
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError("list enrollments", err, "enrollments", "")
	}
	return out, nil
}

// enrollmentQuery builds the SQL of an enrollment filter, in ID order after
// f.After. A type and an attestation type together walk
// (scope, type, attestation_type, id) in page order; anything else walks
// the primary key (scope, id) and skips what does not match. A scope has
// few enrollments (hundreds, not millions), so that walk is short, and it
// stops at the LIMIT instead of sorting every match.
func enrollmentQuery(f gatehouse.EnrollmentFilter) (string, []any) {
	var b strings.Builder
	args := []any{f.Scope, f.After}
	b.WriteString(`SELECT ` + enrollmentColumns + ` FROM enrollments WHERE scope = ? AND id > ?`)
	// The unary + keeps SQLite, which has no statistics, off the
	// (scope, type, ...) index when it would have to sort what it found.
	plus := "+"
	if f.Type != "" && f.Attestation != "" {
		plus = ""
	}
	if f.Type != "" {
		b.WriteString(` AND ` + plus + `type = ?`)
		args = append(args, string(f.Type))
	}
	if f.Attestation != "" {
		b.WriteString(` AND ` + plus + `attestation_type = ?`)
		args = append(args, string(f.Attestation))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	b.WriteString(` ORDER BY id LIMIT ?`)
	args = append(args, limit)
	return b.String(), args
}
