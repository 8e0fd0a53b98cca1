package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gatehouse-iot/gatehouse"
)

const scopeColumns = `id, created_at, policy`

func scanScope(sc scanner) (*gatehouse.Scope, error) {
	var s gatehouse.Scope
	var us int64
	var policy []byte
	if err := sc.Scan(&s.ID, &us, &policy); err != nil {
		return nil, err
	}
	s.CreatedAt = fromMicros(us)
	if err := json.Unmarshal(policy, &s.Policy); err != nil {
		return nil, fmt.Errorf("decode policy of scope %q: %w", s.ID, err)
	}
	return &s, nil
}

// encodePolicy returns the policy's JSON; the zero policy is "{}".
func encodePolicy(p gatehouse.ScopePolicy) (string, error) {
	b, err := json.Marshal(p)
	return string(b), err
}

func getScope(ctx context.Context, c *stmtCache, id string) (*gatehouse.Scope, error) {
	sc, err := scanScope(c.queryRow(ctx, `SELECT `+scopeColumns+` FROM scopes WHERE id = ?`, id))
	if err != nil {
		return nil, storeError("get scope", err, fmt.Sprintf("scope %q", id), "")
	}
	return sc, nil
}

// GetScope implements gatehouse.Reader.
func (s *Store) GetScope(ctx context.Context, id string) (*gatehouse.Scope, error) {
	return getScope(ctx, s.reads, id)
}

// ListScopes implements gatehouse.Reader, ordered by ID.
func (s *Store) ListScopes(ctx context.Context) ([]*gatehouse.Scope, error) {
	rows, err := s.reads.query(ctx, `SELECT `+scopeColumns+` FROM scopes ORDER BY id`)
	if err != nil {
		return nil, storeError("list scopes", err, "scopes", "")
	}
	defer rows.Close()
	var out []*gatehouse.Scope
	for rows.Next() {
		sc, err := scanScope(rows)
		if err != nil {
			return nil, storeError("list scopes", err, "scopes", "")
		}
		out = append(out, sc)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError("list scopes", err, "scopes", "")
	}
	return out, nil
}

func (t *tx) GetScope(id string) (*gatehouse.Scope, error) { return getScope(bg, t.q(), id) }

func (t *tx) CreateScope(sc *gatehouse.Scope) error {
	policy, err := encodePolicy(sc.Policy)
	if err != nil {
		return fmt.Errorf("create scope: encode policy: %w", err)
	}
	_, err = t.q().exec(bg, `INSERT INTO scopes (`+scopeColumns+`) VALUES (?, ?, ?)`, sc.ID, micros(sc.CreatedAt), policy)
	return storeError("create scope", err, fmt.Sprintf("scope %q", sc.ID), "")
}

// UpdateScope implements gatehouse.Tx: it writes the policy, the one
// mutable field.
func (t *tx) UpdateScope(sc *gatehouse.Scope) error {
	what := fmt.Sprintf("scope %q", sc.ID)
	policy, err := encodePolicy(sc.Policy)
	if err != nil {
		return fmt.Errorf("update scope: encode policy: %w", err)
	}
	res, err := t.q().exec(bg, `UPDATE scopes SET policy = ? WHERE id = ?`, policy, sc.ID)
	if err != nil {
		return storeError("update scope", err, what, "")
	}
	return mustAffect(res, "update scope", what)
}
