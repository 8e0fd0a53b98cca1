package postgres

import (
	"context"
	"errors"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

func (s *Store) GetSetting(ctx context.Context, key string) ([]byte, error) {
	return getSetting(ctx, s.pool, key)
}

func getSetting(ctx context.Context, q querier, key string) ([]byte, error) {
	var v []byte
	err := q.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "setting %q not found", key)
	} else if err != nil {
		return nil, mapErr("get setting", err)
	}
	return v, nil
}
