package sqlite

import (
	"context"
	"fmt"

	"github.com/gatehouse-iot/gatehouse"
)

func getScope(ctx context.Context, c *stmtCache, id string) (*gatehouse.Scope, error) {
	var us int64
	err := c.queryRow(ctx, `SELECT created_at FROM scopes WHERE id = ?`, id).Scan(&us)
	if err != nil {
		return nil, storeError("get scope", err, fmt.Sprintf("scope %q", id), "")
	}
	return &gatehouse.Scope{ID: id, CreatedAt: fromMicros(us)}, nil
}

// GetScope implements gatehouse.Reader.
func (s *Store) GetScope(ctx context.Context, id string) (*gatehouse.Scope, error) {
	return getScope(ctx, s.reads, id)
}

// ListScopes implements gatehouse.Reader, ordered by ID.
func (s *Store) ListScopes(ctx context.Context) ([]*gatehouse.Scope, error) {
	rows, err := s.reads.query(ctx, `SELECT id, created_at FROM scopes ORDER BY id`)
	if err != nil {
		return nil, storeError("list scopes", err, "scopes", "")
	}
	defer rows.Close()
	var out []*gatehouse.Scope
	for rows.Next() {
		var sc gatehouse.Scope
		var us int64
		if err := rows.Scan(&sc.ID, &us); err != nil {
			return nil, storeError("list scopes", err, "scopes", "")
		}
		sc.CreatedAt = fromMicros(us)
		out = append(out, &sc)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError("list scopes", err, "scopes", "")
	}
	return out, nil
}

func (t *tx) GetScope(id string) (*gatehouse.Scope, error) { return getScope(bg, t.q(), id) }

func (t *tx) CreateScope(sc *gatehouse.Scope) error {
	_, err := t.q().exec(bg, `INSERT INTO scopes (id, created_at) VALUES (?, ?)`, sc.ID, micros(sc.CreatedAt))
	return storeError("create scope", err, fmt.Sprintf("scope %q", sc.ID), "")
}
