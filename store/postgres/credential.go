package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

const credentialColumns = `scope, id, device_id, kind, status, serial, thumbprint, slot, not_before, not_after,
	created_at, retire_at, revoked_at, revocation_reason, expiry_notified_at, cert_der, secret`

func scanCredential(row pgx.Row) (*gatehouse.Credential, error) {
	c := &gatehouse.Credential{}
	var kind, status string
	err := row.Scan(&c.Scope, &c.ID, &c.DeviceID, &kind, &status, &c.Serial, &c.Thumbprint, &c.Slot,
		&c.NotBefore, &c.NotAfter, &c.CreatedAt, &c.RetireAt, &c.RevokedAt, &c.RevocationReason,
		&c.ExpiryNotifiedAt, &c.CertDER, &c.Secret)
	if err != nil {
		return nil, err
	}
	c.Kind, c.Status = gatehouse.CredentialKind(kind), gatehouse.CredentialStatus(status)
	c.NotBefore, c.NotAfter = utcPtr(c.NotBefore), utcPtr(c.NotAfter)
	c.CreatedAt = c.CreatedAt.UTC()
	c.RetireAt, c.RevokedAt, c.ExpiryNotifiedAt = utcPtr(c.RetireAt), utcPtr(c.RevokedAt), utcPtr(c.ExpiryNotifiedAt)
	c.CertDER, c.Secret = nilIfEmpty(c.CertDER), nilIfEmpty(c.Secret)
	return c, nil
}

// nullBytes stores an empty byte value as NULL.
func nullBytes(b []byte) []byte { return nilIfEmpty(b) }

func (s *Store) GetCredential(ctx context.Context, scope, id string) (*gatehouse.Credential, error) {
	return getCredential(ctx, s.pool, scope, id, "")
}

// GetCredential reads a credential and locks its row until the transaction
// ends.
func (t *Tx) GetCredential(scope, id string) (*gatehouse.Credential, error) {
	c, err := getCredential(t.ctx, t.tx, scope, id, " FOR UPDATE")
	return c, t.check(err)
}

func getCredential(ctx context.Context, q querier, scope, id, lock string) (*gatehouse.Credential, error) {
	c, err := scanCredential(q.QueryRow(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE scope = $1 AND id = $2`+lock, scope, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "credential %q not found", id)
	}
	return c, mapErr("get credential", err)
}

func (t *Tx) CreateCredential(c *gatehouse.Credential) error {
	return t.write(t.createCredential(c), nil)
}

func (t *Tx) createCredential(c *gatehouse.Credential) queued {
	return queued{sql: `INSERT INTO credentials (` + credentialColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
		ON CONFLICT DO NOTHING`,
		args: []any{c.Scope, c.ID, c.DeviceID, string(c.Kind), string(c.Status), c.Serial, c.Thumbprint, c.Slot,
			c.NotBefore, c.NotAfter, c.CreatedAt, c.RetireAt, c.RevokedAt, c.RevocationReason,
			c.ExpiryNotifiedAt, nullBytes(c.CertDER), nullBytes(c.Secret)},
		refusable: true,
		check: rowsCheck("create credential", func() error {
			return gatehouse.Errorf(gatehouse.EConflict, "credential %q already exists", c.ID)
		})}
}

func (t *Tx) UpdateCredential(c *gatehouse.Credential) error {
	return t.write(t.updateCredential(c), nil)
}

func (t *Tx) updateCredential(c *gatehouse.Credential) queued {
	return queued{sql: `UPDATE credentials SET status = $3, retire_at = $4, revoked_at = $5,
		revocation_reason = $6, expiry_notified_at = $7, secret = $8 WHERE scope = $1 AND id = $2`,
		args:      []any{c.Scope, c.ID, string(c.Status), c.RetireAt, c.RevokedAt, c.RevocationReason, c.ExpiryNotifiedAt, nullBytes(c.Secret)},
		refusable: true,
		check: rowsCheck("update credential", func() error {
			return gatehouse.Errorf(gatehouse.ENotFound, "credential %q not found", c.ID)
		})}
}

func (t *Tx) DeviceCredentials(scope, deviceID string) ([]*gatehouse.Credential, error) {
	cs, err := queryCredentials(t.ctx, t.tx, "device credentials", `SELECT `+credentialColumns+` FROM credentials
		WHERE scope = $1 AND device_id = $2 ORDER BY id`, scope, deviceID)
	return cs, t.check(err)
}

func (s *Store) ListCredentials(ctx context.Context, f gatehouse.CredentialFilter) ([]*gatehouse.Credential, error) {
	query, args := listCredentialsQuery(f)
	return queryCredentials(ctx, s.pool, "list credentials", query, args...)
}

func queryCredentials(ctx context.Context, q querier, op, query string, args ...any) ([]*gatehouse.Credential, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, mapErr(op, err)
	}
	cs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*gatehouse.Credential, error) { return scanCredential(row) })
	return cs, mapErr(op, err)
}

// anyOf returns the condition "= one value" or "= ANY(array)". One value is
// an equality the planner can walk (scope, status, kind, id) with in ID
// order, which spares the sort an ANY would need.
func anyOf(vals []string, arg func(any) string) string {
	if len(vals) == 1 {
		return " = " + arg(vals[0])
	}
	return " = ANY(" + arg(vals) + "::text[])"
}

// listCredentialsQuery builds the SQL for f, in ID order after f.After.
// The planner picks among the indexes (scope, device_id, id), (scope,
// not_after) and (scope, status, kind, id) by their statistics.
func listCredentialsQuery(f gatehouse.CredentialFilter) (string, []any) {
	var b strings.Builder
	args := []any{f.Scope, f.After}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	b.WriteString(`SELECT ` + credentialColumns + ` FROM credentials WHERE scope = $1 AND id > $2`)
	if f.DeviceID != "" {
		fmt.Fprintf(&b, ` AND device_id = %s`, arg(f.DeviceID))
	}
	if len(f.Kinds) > 0 {
		kinds := make([]string, len(f.Kinds))
		for i, k := range f.Kinds {
			kinds[i] = string(k)
		}
		b.WriteString(` AND kind` + anyOf(kinds, arg))
	}
	if len(f.Statuses) > 0 {
		statuses := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			statuses[i] = string(st)
		}
		b.WriteString(` AND status` + anyOf(statuses, arg))
	}
	if f.ExpiringBefore != nil {
		fmt.Fprintf(&b, ` AND not_after < %s`, arg(*f.ExpiringBefore))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	b.WriteString(" ORDER BY id LIMIT " + arg(limit))
	return b.String(), args
}
