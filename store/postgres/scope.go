package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

const scopeColumns = `id, created_at, policy`

func scanScope(row pgx.Row) (*gatehouse.Scope, error) {
	sc := &gatehouse.Scope{}
	var policy []byte
	if err := row.Scan(&sc.ID, &sc.CreatedAt, &policy); err != nil {
		return nil, err
	}
	sc.CreatedAt = sc.CreatedAt.UTC()
	if err := json.Unmarshal(policy, &sc.Policy); err != nil {
		return nil, fmt.Errorf("decode policy of scope %q: %w", sc.ID, err)
	}
	return sc, nil
}

func (s *Store) GetScope(ctx context.Context, id string) (*gatehouse.Scope, error) {
	return getScope(ctx, s.pool, id)
}

func getScope(ctx context.Context, q querier, id string) (*gatehouse.Scope, error) {
	sc, err := scanScope(q.QueryRow(ctx, `SELECT `+scopeColumns+` FROM scopes WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "scope %q not found", id)
	} else if err != nil {
		return nil, mapErr("get scope", err)
	}
	return sc, nil
}

func (s *Store) ListScopes(ctx context.Context) ([]*gatehouse.Scope, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+scopeColumns+` FROM scopes ORDER BY id`)
	if err != nil {
		return nil, mapErr("list scopes", err)
	}
	scopes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*gatehouse.Scope, error) { return scanScope(row) })
	return scopes, mapErr("list scopes", err)
}

func (t *Tx) CreateScope(s *gatehouse.Scope) error {
	policy, err := json.Marshal(s.Policy)
	if err != nil {
		return fmt.Errorf("create scope: encode policy: %w", err)
	}
	tag, err := t.tx.Exec(t.ctx, `INSERT INTO scopes (`+scopeColumns+`) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		s.ID, s.CreatedAt, policy)
	if err != nil {
		return t.fail("create scope", err)
	}
	if tag.RowsAffected() == 0 {
		return gatehouse.Errorf(gatehouse.EConflict, "scope %q already exists", s.ID)
	}
	return nil
}

// UpdateScope writes the policy, the one mutable field of a scope.
func (t *Tx) UpdateScope(s *gatehouse.Scope) error {
	policy, err := json.Marshal(s.Policy)
	if err != nil {
		return fmt.Errorf("update scope: encode policy: %w", err)
	}
	tag, err := t.tx.Exec(t.ctx, `UPDATE scopes SET policy = $2 WHERE id = $1`, s.ID, policy)
	if err != nil {
		return t.fail("update scope", err)
	}
	if tag.RowsAffected() == 0 {
		return gatehouse.Errorf(gatehouse.ENotFound, "scope %q not found", s.ID)
	}
	return nil
}
