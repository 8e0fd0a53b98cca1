package sqlite

import (
	"context"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// countQuery returns the GROUP BY statement for by, and the tag key when by
// names a tag. Each runs on an index: devices_state, devices_conn, or
// device_tags_kv (a tag's values, then the devices without the tag as the
// total minus the tagged).
func countQuery(by gatehouse.DeviceCountBy, oneScope bool) (q, tag string, err error) {
	where := ""
	if oneScope {
		where = ` WHERE scope = ?`
	}
	switch {
	case by == "state":
		return `SELECT scope, state, count(*) FROM devices` + where + ` GROUP BY scope, state`, "", nil
	case by == "connection":
		return `SELECT scope, conn_status, count(*) FROM devices` + where + ` GROUP BY scope, conn_status`, "", nil
	case strings.HasPrefix(string(by), "tag:") && len(by) > 4:
		tw := ` WHERE key = ?`
		if oneScope {
			tw = ` WHERE scope = ? AND key = ?`
		}
		return `SELECT scope, value, count(*) FROM device_tags` + tw + ` GROUP BY scope, value`, string(by[4:]), nil
	}
	return "", "", gatehouse.Errorf(gatehouse.EInvalid, "count by must be state, connection or tag:<key>")
}

// CountDevices implements gatehouse.Reader.
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

// CountAllDevices implements gatehouse.Reader.
func (s *Store) CountAllDevices(ctx context.Context, by gatehouse.DeviceCountBy) (map[string]map[string]int64, error) {
	return s.countDevices(ctx, "", by)
}

func (s *Store) countDevices(ctx context.Context, scope string, by gatehouse.DeviceCountBy) (map[string]map[string]int64, error) {
	q, tag, err := countQuery(by, scope != "")
	if err != nil {
		return nil, err
	}
	var args []any
	if scope != "" {
		args = append(args, scope)
	}
	if tag != "" {
		args = append(args, tag)
	}
	out := map[string]map[string]int64{}
	if err := s.groupCounts(ctx, out, q, args...); err != nil {
		return nil, err
	}
	if tag == "" {
		return out, nil
	}
	// Devices without the tag count under "".
	totals := map[string]map[string]int64{}
	tq := `SELECT scope, '', count(*) FROM devices GROUP BY scope`
	var targs []any
	if scope != "" {
		tq = `SELECT scope, '', count(*) FROM devices WHERE scope = ? GROUP BY scope`
		targs = append(targs, scope)
	}
	if err := s.groupCounts(ctx, totals, tq, targs...); err != nil {
		return nil, err
	}
	for sc, t := range totals {
		total := t[""]
		if out[sc] == nil {
			out[sc] = map[string]int64{}
		}
		for _, n := range out[sc] {
			total -= n
		}
		if total > 0 {
			out[sc][""] += total
		}
	}
	return out, nil
}

func (s *Store) groupCounts(ctx context.Context, out map[string]map[string]int64, q string, args ...any) error {
	rows, err := s.reads.query(ctx, q, args...)
	if err != nil {
		return storeError("count devices", err, "devices", "")
	}
	defer rows.Close()
	for rows.Next() {
		var sc, v string
		var n int64
		if err := rows.Scan(&sc, &v, &n); err != nil {
			return storeError("count devices", err, "devices", "")
		}
		if out[sc] == nil {
			out[sc] = map[string]int64{}
		}
		out[sc][v] += n
	}
	return storeError("count devices", rows.Err(), "devices", "")
}

// expiringCountQuery counts active credentials expiring in a window, per
// scope, over every scope: a range of credentials_active_expiry (not_after,
// scope) WHERE status = 'active', which also holds the scope, so the table
// is not read.
const expiringCountQuery = `SELECT scope, count(*) FROM credentials
	WHERE not_after >= ? AND not_after < ? AND status = 'active' GROUP BY scope`

// CountExpiringCredentials implements gatehouse.Reader.
func (s *Store) CountExpiringCredentials(ctx context.Context, from, before time.Time) (map[string]int64, error) {
	rows, err := s.reads.query(ctx, expiringCountQuery, micros(from), micros(before))
	if err != nil {
		return nil, storeError("count expiring credentials", err, "credentials", "")
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var sc string
		var n int64
		if err := rows.Scan(&sc, &n); err != nil {
			return nil, storeError("count expiring credentials", err, "credentials", "")
		}
		out[sc] = n
	}
	return out, storeError("count expiring credentials", rows.Err(), "credentials", "")
}
