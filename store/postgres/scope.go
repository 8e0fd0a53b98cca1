package postgres

import (
	"context"
	"errors"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

func (s *Store) GetScope(ctx context.Context, id string) (*gatehouse.Scope, error) {
	return getScope(ctx, s.pool, id)
}

func getScope(ctx context.Context, q querier, id string) (*gatehouse.Scope, error) {
	sc := &gatehouse.Scope{}
	err := q.QueryRow(ctx, `SELECT id, created_at FROM scopes WHERE id = $1`, id).Scan(&sc.ID, &sc.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "scope %q not found", id)
	} else if err != nil {
		return nil, mapErr("get scope", err)
	}
	sc.CreatedAt = sc.CreatedAt.UTC()
	return sc, nil
}

func (s *Store) ListScopes(ctx context.Context) ([]*gatehouse.Scope, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, created_at FROM scopes ORDER BY id`)
	if err != nil {
		return nil, mapErr("list scopes", err)
	}
	scopes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*gatehouse.Scope, error) {
		sc := &gatehouse.Scope{}
		err := row.Scan(&sc.ID, &sc.CreatedAt)
		sc.CreatedAt = sc.CreatedAt.UTC()
		return sc, err
	})
	return scopes, mapErr("list scopes", err)
}
