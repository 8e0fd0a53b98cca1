package postgres

import (
	"context"
	"errors"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

const tokenColumns = `id, scope, name, role, hash, created_at, created_by, revoked_at`

func scanToken(row pgx.Row) (*gatehouse.Token, error) {
	t := &gatehouse.Token{}
	var role string
	if err := row.Scan(&t.ID, &t.Scope, &t.Name, &role, &t.Hash, &t.CreatedAt, &t.CreatedBy, &t.RevokedAt); err != nil {
		return nil, err
	}
	t.Role = gatehouse.Role(role)
	t.CreatedAt = t.CreatedAt.UTC()
	t.RevokedAt = utcPtr(t.RevokedAt)
	return t, nil
}

func (s *Store) GetToken(ctx context.Context, id string) (*gatehouse.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "token %q not found", id)
	}
	return t, mapErr("get token", err)
}

func (s *Store) ListTokens(ctx context.Context, scope string) ([]*gatehouse.Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE scope = $1 ORDER BY id`, scope)
	if err != nil {
		return nil, mapErr("list tokens", err)
	}
	tokens, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*gatehouse.Token, error) { return scanToken(row) })
	return tokens, mapErr("list tokens", err)
}
