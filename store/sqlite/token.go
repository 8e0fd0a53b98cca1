package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

const tokenColumns = `id, scope, name, role, hash, created_at, created_by, revoked_at`

func scanToken(sc scanner) (*gatehouse.Token, error) {
	var t gatehouse.Token
	var created int64
	var revoked sql.NullInt64
	if err := sc.Scan(&t.ID, &t.Scope, &t.Name, &t.Role, &t.Hash, &created, &t.CreatedBy, &revoked); err != nil {
		return nil, err
	}
	t.CreatedAt = fromMicros(created)
	t.RevokedAt = fromNullMicros(revoked)
	return &t, nil
}

// GetToken implements gatehouse.Reader.
func (s *Store) GetToken(ctx context.Context, id string) (*gatehouse.Token, error) {
	t, err := scanToken(s.reads.queryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id))
	if err != nil {
		return nil, storeError("get token", err, fmt.Sprintf("token %q", id), "")
	}
	return t, nil
}

// ListTokens implements gatehouse.Reader, ordered by ID.
func (s *Store) ListTokens(ctx context.Context, scope string) ([]*gatehouse.Token, error) {
	rows, err := s.reads.query(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE scope = ? ORDER BY id`, scope)
	if err != nil {
		return nil, storeError("list tokens", err, "tokens", "")
	}
	defer rows.Close()
	var out []*gatehouse.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, storeError("list tokens", err, "tokens", "")
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError("list tokens", err, "tokens", "")
	}
	return out, nil
}

func (t *tx) CreateToken(tok *gatehouse.Token) error {
	_, err := t.q().exec(bg, `INSERT INTO tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		tok.ID, tok.Scope, tok.Name, string(tok.Role), tok.Hash, micros(tok.CreatedAt), tok.CreatedBy, nullMicros(tok.RevokedAt))
	return storeError("create token", err, fmt.Sprintf("token %q", tok.ID), "")
}

func (t *tx) RevokeToken(id string, at time.Time) error {
	res, err := t.q().exec(bg, `UPDATE tokens SET revoked_at = ? WHERE id = ?`, micros(at), id)
	if err != nil {
		return storeError("revoke token", err, fmt.Sprintf("token %q", id), "")
	}
	return mustAffect(res, "revoke token", fmt.Sprintf("token %q", id))
}

// mustAffect returns ENotFound if a write touched no row.
func mustAffect(res sql.Result, op, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return storeError(op, err, what, "")
	}
	if n == 0 {
		return gatehouse.Errorf(gatehouse.ENotFound, "%s not found", what)
	}
	return nil
}
