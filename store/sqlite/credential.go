package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
)

const credentialColumns = `scope, id, device_id, kind, status, serial, thumbprint, slot, not_before, not_after,
	created_at, retire_at, revoked_at, revocation_reason, expiry_notified_at, cert_der, secret`

func credentialName(scope, id string) string {
	return fmt.Sprintf("credential %q in scope %q", id, scope)
}

func scanCredential(sc scanner) (*gatehouse.Credential, error) {
	var c gatehouse.Credential
	var notBefore, notAfter, retire, revoked, notified sql.NullInt64
	var created int64
	err := sc.Scan(&c.Scope, &c.ID, &c.DeviceID, &c.Kind, &c.Status, &c.Serial, &c.Thumbprint, &c.Slot,
		&notBefore, &notAfter, &created, &retire, &revoked, &c.RevocationReason, &notified, &c.CertDER, &c.Secret)
	if err != nil {
		return nil, err
	}
	c.NotBefore, c.NotAfter = fromNullMicros(notBefore), fromNullMicros(notAfter)
	c.CreatedAt = fromMicros(created)
	c.RetireAt, c.RevokedAt, c.ExpiryNotifiedAt = fromNullMicros(retire), fromNullMicros(revoked), fromNullMicros(notified)
	c.CertDER, c.Secret = nilIfEmpty(c.CertDER), nilIfEmpty(c.Secret)
	return &c, nil
}

// nullBytes stores an empty byte value as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func getCredential(ctx context.Context, c *stmtCache, scope, id string) (*gatehouse.Credential, error) {
	cred, err := scanCredential(c.queryRow(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE scope = ? AND id = ?`, scope, id))
	if err != nil {
		return nil, storeError("get credential", err, credentialName(scope, id), "")
	}
	return cred, nil
}

// GetCredential implements gatehouse.Reader.
func (s *Store) GetCredential(ctx context.Context, scope, id string) (*gatehouse.Credential, error) {
	return getCredential(ctx, s.reads, scope, id)
}

// GetCredential implements gatehouse.Tx. As with GetCRL, the single writer
// is the lock.
func (t *tx) GetCredential(scope, id string) (*gatehouse.Credential, error) {
	return getCredential(bg, t.q(), scope, id)
}

func (t *tx) CreateCredential(c *gatehouse.Credential) error {
	_, err := t.q().exec(bg, `INSERT INTO credentials (`+credentialColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Scope, c.ID, c.DeviceID, string(c.Kind), string(c.Status), c.Serial, c.Thumbprint, c.Slot,
		nullMicros(c.NotBefore), nullMicros(c.NotAfter), micros(c.CreatedAt), nullMicros(c.RetireAt),
		nullMicros(c.RevokedAt), c.RevocationReason, nullMicros(c.ExpiryNotifiedAt), nullBytes(c.CertDER), nullBytes(c.Secret))
	return storeError("create credential", err, credentialName(c.Scope, c.ID), "")
}

func (t *tx) UpdateCredential(c *gatehouse.Credential) error {
	name := credentialName(c.Scope, c.ID)
	res, err := t.q().exec(bg, `UPDATE credentials SET status = ?, retire_at = ?, revoked_at = ?, revocation_reason = ?,
		expiry_notified_at = ?, secret = ? WHERE scope = ? AND id = ?`,
		string(c.Status), nullMicros(c.RetireAt), nullMicros(c.RevokedAt), c.RevocationReason,
		nullMicros(c.ExpiryNotifiedAt), nullBytes(c.Secret), c.Scope, c.ID)
	if err != nil {
		return storeError("update credential", err, name, "")
	}
	return mustAffect(res, "update credential", name)
}

func (t *tx) DeviceCredentials(scope, deviceID string) ([]*gatehouse.Credential, error) {
	return queryCredentials(bg, t.q(), "device credentials", `SELECT `+credentialColumns+` FROM credentials
		WHERE scope = ? AND device_id = ? ORDER BY id`, scope, deviceID)
}

// ListCredentials implements gatehouse.Reader.
func (s *Store) ListCredentials(ctx context.Context, f gatehouse.CredentialFilter) ([]*gatehouse.Credential, error) {
	query, args := credentialQuery(f)
	return queryCredentials(ctx, s.reads, "list credentials", query, args...)
}

func queryCredentials(ctx context.Context, c *stmtCache, op, query string, args ...any) ([]*gatehouse.Credential, error) {
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return nil, storeError(op, err, "credentials", "")
	}
	defer rows.Close()
	var out []*gatehouse.Credential
	for rows.Next() {
		cred, err := scanCredential(rows)
		if err != nil {
			return nil, storeError(op, err, "credentials", "")
		}
		out = append(out, cred)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError(op, err, "credentials", "")
	}
	return out, nil
}

// credentialQuery builds the SQL of a credential filter: pages in ID order
// after f.After, like deviceQuery.
//
// Which index answers it: a device's credentials come from (scope,
// device_id, id) in page order, whatever else the filter names: a device
// has few. Otherwise ExpiringBefore reads the range of
// (scope, not_after) before the time and sorts what matched: expiring
// credentials are a small part of a scope, and walking the scope in ID order
// instead would read all of it to fill a page. Without either, one status
// and one kind walk (scope, status, kind, id) in page order, and anything
// else walks the primary key (scope, id).
//
// A unary + on an indexed column keeps SQLite, which has no statistics to go
// by, from choosing the primary key to save the sort.
func credentialQuery(f gatehouse.CredentialFilter) (string, []any) {
	var b strings.Builder
	args := []any{f.Scope}
	b.WriteString(`SELECT ` + credentialColumns + ` FROM credentials WHERE scope = ?`)
	byExpiry := f.DeviceID == "" && f.ExpiringBefore != nil
	if byExpiry {
		b.WriteString(` AND +id > ?`)
	} else {
		b.WriteString(` AND id > ?`)
	}
	args = append(args, f.After)
	if f.DeviceID != "" {
		b.WriteString(` AND device_id = ?`)
		args = append(args, f.DeviceID)
	}
	plus := ""
	if byExpiry || f.DeviceID != "" {
		plus = "+" // keep to the device's or the expiry index
	}
	if len(f.Kinds) > 0 {
		b.WriteString(` AND ` + plus + `kind IN (` + placeholders(len(f.Kinds)) + `)`)
		for _, k := range f.Kinds {
			args = append(args, string(k))
		}
	}
	if len(f.Statuses) > 0 {
		b.WriteString(` AND ` + plus + `status IN (` + placeholders(len(f.Statuses)) + `)`)
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
	}
	if f.ExpiringBefore != nil {
		b.WriteString(` AND not_after < ?`)
		args = append(args, micros(*f.ExpiringBefore))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	b.WriteString(` ORDER BY id LIMIT ?`)
	args = append(args, limit)
	return b.String(), args
}
