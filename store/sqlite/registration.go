package sqlite

import (
	"context"
	"fmt"

	"github.com/gatehouse-iot/gatehouse"
)

const registrationColumns = `scope, registration_id, enrollment_id, device_id, operation_id, status, substatus,
	assigned_hub, error_code, error_message, attempts, created_at, updated_at, etag`

func registrationName(scope, id string) string {
	return fmt.Sprintf("registration %q in scope %q", id, scope)
}

func getRegistration(ctx context.Context, c *stmtCache, scope, id string) (*gatehouse.Registration, error) {
	var r gatehouse.Registration
	var created, updated int64
	err := c.queryRow(ctx, `SELECT `+registrationColumns+` FROM registrations WHERE scope = ? AND registration_id = ?`, scope, id).
		Scan(&r.Scope, &r.RegistrationID, &r.EnrollmentID, &r.DeviceID, &r.OperationID, &r.Status, &r.Substatus,
			&r.AssignedHub, &r.ErrorCode, &r.ErrorMessage, &r.Attempts, &created, &updated, &r.ETag)
	if err != nil {
		return nil, storeError("get registration", err, registrationName(scope, id), "")
	}
	r.CreatedAt, r.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &r, nil
}

// GetRegistration implements gatehouse.Reader.
func (s *Store) GetRegistration(ctx context.Context, scope, registrationID string) (*gatehouse.Registration, error) {
	return getRegistration(ctx, s.reads, scope, registrationID)
}

// GetRegistration implements gatehouse.Tx. The single writer is the lock,
// for a registration ID without a record too.
func (t *tx) GetRegistration(scope, registrationID string) (*gatehouse.Registration, error) {
	return getRegistration(bg, t.q(), scope, registrationID)
}

func (t *tx) PutRegistration(r *gatehouse.Registration) error {
	_, err := t.q().exec(bg, `INSERT INTO registrations (`+registrationColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (scope, registration_id) DO UPDATE SET enrollment_id = excluded.enrollment_id,
			device_id = excluded.device_id, operation_id = excluded.operation_id, status = excluded.status,
			substatus = excluded.substatus, assigned_hub = excluded.assigned_hub, error_code = excluded.error_code,
			error_message = excluded.error_message, attempts = excluded.attempts, created_at = excluded.created_at,
			updated_at = excluded.updated_at, etag = excluded.etag`,
		r.Scope, r.RegistrationID, r.EnrollmentID, r.DeviceID, r.OperationID, string(r.Status), r.Substatus,
		r.AssignedHub, r.ErrorCode, r.ErrorMessage, r.Attempts, micros(r.CreatedAt), micros(r.UpdatedAt), r.ETag)
	return storeError("put registration", err, registrationName(r.Scope, r.RegistrationID), "")
}
