package postgres

import (
	"context"
	"errors"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

const registrationColumns = `scope, registration_id, enrollment_id, device_id, operation_id, status, substatus,
	assigned_hub, error_code, error_message, attempts, created_at, updated_at, etag`

// registrationLockClass is the first key of the transaction-level advisory
// locks on registration IDs (the second is a hash of scope and ID). The
// two-key form keeps them apart from the one-key migration lock. It spells
// "regs" in ASCII.
const registrationLockClass int32 = 0x72656773

func (s *Store) GetRegistration(ctx context.Context, scope, registrationID string) (*gatehouse.Registration, error) {
	return getRegistration(ctx, s.pool, scope, registrationID, "")
}

// GetRegistration locks the registration ID with a transaction-level
// advisory lock, then reads its record. A row lock alone would not do: it
// locks nothing while there is no record, and two first registrations of
// one device would both find none. The read is a second statement so that,
// in read committed, it sees what a transaction that held the lock before
// committed; the two go in one batch (with BEGIN, when the registration is
// the transaction's first statement), and PostgreSQL runs them in order.
// Hash collisions only make two IDs wait for each other.
func (t *Tx) GetRegistration(scope, registrationID string) (*gatehouse.Registration, error) {
	t.tx.queue(queued{sql: `SELECT pg_advisory_xact_lock($1, hashtext($2 || '/' || $3))`,
		args: []any{registrationLockClass, scope, registrationID}, check: execCheck("lock registration")})
	r, err := getRegistration(t.ctx, t.tx, scope, registrationID, " FOR UPDATE")
	return r, t.check(err)
}

func getRegistration(ctx context.Context, q querier, scope, id, lock string) (*gatehouse.Registration, error) {
	r := &gatehouse.Registration{}
	var status string
	err := q.QueryRow(ctx, `SELECT `+registrationColumns+` FROM registrations WHERE scope = $1 AND registration_id = $2`+lock, scope, id).
		Scan(&r.Scope, &r.RegistrationID, &r.EnrollmentID, &r.DeviceID, &r.OperationID, &status, &r.Substatus,
			&r.AssignedHub, &r.ErrorCode, &r.ErrorMessage, &r.Attempts, &r.CreatedAt, &r.UpdatedAt, &r.ETag)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "registration %q not found", id)
	} else if err != nil {
		return nil, mapErr("get registration", err)
	}
	r.Status = gatehouse.RegistrationStatus(status)
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return r, nil
}

// PutRegistration upserts the record.
func (t *Tx) PutRegistration(r *gatehouse.Registration) error {
	return t.write(t.putRegistration(r), nil)
}

func (t *Tx) putRegistration(r *gatehouse.Registration) queued {
	return queued{sql: `INSERT INTO registrations (` + registrationColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (scope, registration_id) DO UPDATE SET enrollment_id = EXCLUDED.enrollment_id,
			device_id = EXCLUDED.device_id, operation_id = EXCLUDED.operation_id, status = EXCLUDED.status,
			substatus = EXCLUDED.substatus, assigned_hub = EXCLUDED.assigned_hub, error_code = EXCLUDED.error_code,
			error_message = EXCLUDED.error_message, attempts = EXCLUDED.attempts, created_at = EXCLUDED.created_at,
			updated_at = EXCLUDED.updated_at, etag = EXCLUDED.etag`,
		args: []any{r.Scope, r.RegistrationID, r.EnrollmentID, r.DeviceID, r.OperationID, string(r.Status), r.Substatus,
			r.AssignedHub, r.ErrorCode, r.ErrorMessage, r.Attempts, r.CreatedAt, r.UpdatedAt, r.ETag},
		check: execCheck("put registration")}
}
