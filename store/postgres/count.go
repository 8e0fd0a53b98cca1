package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

// CountDevices groups one scope's devices (see store/sqlite/count.go for
// the indexes each grouping uses).
func (s *Store) CountDevices(ctx context.Context, scope string, by gatehouse.DeviceCountBy) (map[string]int64, error) {
	m, err := s.countDevices(ctx, scope, by)
	if err != nil {
		return nil, err
	}
	if m[scope] == nil {
		return map[string]int64{}, nil
	}
	return m[scope], nil
}

func (s *Store) CountAllDevices(ctx context.Context, by gatehouse.DeviceCountBy) (map[string]map[string]int64, error) {
	return s.countDevices(ctx, "", by)
}

func (s *Store) countDevices(ctx context.Context, scope string, by gatehouse.DeviceCountBy) (map[string]map[string]int64, error) {
	q, args, err := countQuery(scope, by)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, mapErr("count devices", err)
	}
	out := map[string]map[string]int64{}
	var sc, v string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&sc, &v, &n}, func() error {
		if n <= 0 {
			return nil
		}
		if out[sc] == nil {
			out[sc] = map[string]int64{}
		}
		out[sc][v] += n
		return nil
	})
	return out, mapErr("count devices", err)
}

// expiringCountQuery counts active credentials expiring in a window, per
// scope, over every scope: an index-only range of
// credentials_active_expiry_idx (not_after, scope) WHERE status = 'active'.
const expiringCountQuery = `SELECT scope, count(*) FROM credentials
	WHERE not_after >= $1 AND not_after < $2 AND status = 'active' GROUP BY scope`

func (s *Store) CountExpiringCredentials(ctx context.Context, from, before time.Time) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, expiringCountQuery, from, before)
	if err != nil {
		return nil, mapErr("count expiring credentials", err)
	}
	out := map[string]int64{}
	var sc string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&sc, &n}, func() error { out[sc] = n; return nil })
	return out, mapErr("count expiring credentials", err)
}

// countQuery builds the GROUP BY of CountDevices (scope "": every scope).
func countQuery(scope string, by gatehouse.DeviceCountBy) (string, []any, error) {
	var q, tag string
	switch {
	case by == "state":
		q = `SELECT scope, state, count(*) FROM devices WHERE ($1 = '' OR scope = $1) GROUP BY scope, state`
	case by == "connection":
		q = `SELECT scope, conn_status, count(*) FROM devices WHERE ($1 = '' OR scope = $1) GROUP BY scope, conn_status`
	case strings.HasPrefix(string(by), "tag:") && len(by) > 4:
		tag = string(by[4:])
		// Devices without the tag count under "": the total minus the tagged.
		q = `WITH tagged AS (
				SELECT scope, value, count(*) AS n FROM device_tags WHERE ($1 = '' OR scope = $1) AND key = $2 GROUP BY scope, value
			), totals AS (
				SELECT scope, count(*) AS n FROM devices WHERE ($1 = '' OR scope = $1) GROUP BY scope
			)
			SELECT scope, value, n FROM tagged
			UNION ALL
			SELECT t.scope, '', (t.n - coalesce((SELECT sum(n) FROM tagged g WHERE g.scope = t.scope), 0))::bigint FROM totals t`
	default:
		return "", nil, gatehouse.Errorf(gatehouse.EInvalid, "count by must be state, connection or tag:<key>")
	}
	if scope != "" {
		// A literal scope lets the planner use the (scope, ...) indexes.
		q = strings.ReplaceAll(q, "($1 = '' OR scope = $1)", "scope = $1")
	} else {
		q = strings.ReplaceAll(q, "($1 = '' OR scope = $1)", "$1 = ''")
	}
	args := []any{scope}
	if tag != "" {
		args = append(args, tag)
	}
	return q, args, nil
}
