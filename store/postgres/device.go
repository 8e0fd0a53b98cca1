package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

const deviceColumns = `scope, id, state, conn_status, last_seen, tags, config, reported, enrollment, created_at, updated_at, etag`

func scanDevice(row pgx.Row) (*gatehouse.Device, error) {
	d := &gatehouse.Device{}
	var state, conn string
	var tags, config, reported []byte
	if err := row.Scan(&d.Scope, &d.ID, &state, &conn, &d.Connection.LastSeen, &tags, &config, &reported,
		&d.Enrollment, &d.CreatedAt, &d.UpdatedAt, &d.ETag); err != nil {
		return nil, err
	}
	d.State = gatehouse.State(state)
	d.Connection.Status = gatehouse.ConnectionStatus(conn)
	d.Connection.LastSeen = utcPtr(d.Connection.LastSeen)
	d.CreatedAt = d.CreatedAt.UTC()
	d.UpdatedAt = d.UpdatedAt.UTC()
	if err := json.Unmarshal(tags, &d.Tags); err != nil {
		return nil, fmt.Errorf("decode tags of device %s/%s: %w", d.Scope, d.ID, err)
	}
	if len(config) > 0 {
		d.Config = config
	}
	if len(reported) > 0 {
		d.Reported = reported
	}
	return d, nil
}

// tagParams returns a device's tags as JSON for devices.tags and as two
// parallel arrays (sorted by key) for device_tags.
func tagParams(tags map[string]string) (js []byte, keys, values []string, err error) {
	if tags == nil {
		tags = map[string]string{}
	}
	js, err = json.Marshal(tags)
	if err != nil {
		return nil, nil, nil, err
	}
	keys = make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	values = make([]string, len(keys))
	for i, k := range keys {
		values[i] = tags[k]
	}
	return js, keys, values, nil
}

func (s *Store) GetDevice(ctx context.Context, scope, id string) (*gatehouse.Device, error) {
	return getDevice(ctx, s.pool, scope, id, "")
}

// GetDevice reads a device and locks its row until the transaction ends.
func (t *Tx) GetDevice(scope, id string) (*gatehouse.Device, error) {
	d, err := getDevice(t.ctx, t.tx, scope, id, " FOR UPDATE")
	return d, t.check(err)
}

func getDevice(ctx context.Context, q querier, scope, id, lock string) (*gatehouse.Device, error) {
	d, err := scanDevice(q.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE scope = $1 AND id = $2`+lock, scope, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "device %q not found", id)
	}
	return d, mapErr("get device", err)
}

func (t *Tx) CreateDevice(d *gatehouse.Device) error { return t.write(t.createDevice(d)) }

// createDevice is one statement: the device and its tag rows, or nothing if
// the ID is taken (without an error that would abort the transaction).
func (t *Tx) createDevice(d *gatehouse.Device) (queued, error) {
	tags, keys, values, err := tagParams(d.Tags)
	if err != nil {
		return queued{}, fmt.Errorf("create device: %w", err)
	}
	return queued{sql: `
		WITH d AS (
			INSERT INTO devices (` + deviceColumns + `)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT DO NOTHING
			RETURNING scope, id
		), t AS (
			INSERT INTO device_tags (scope, device_id, key, value)
			SELECT d.scope, d.id, k, v FROM d, unnest($13::text[], $14::text[]) AS kv(k, v)
		)
		SELECT count(*) FROM d`,
		args: []any{d.Scope, d.ID, string(d.State), string(d.Connection.Status), d.Connection.LastSeen, tags,
			nonNil(d.Config), nonNil(d.Reported), d.Enrollment, d.CreatedAt, d.UpdatedAt, d.ETag,
			keys, values},
		refusable: true,
		check: func(br pgx.BatchResults) error {
			var n int
			if err := br.QueryRow().Scan(&n); err != nil {
				return mapErr("create device", err)
			}
			if n == 0 {
				return gatehouse.Errorf(gatehouse.EConflict, "device %q already exists", d.ID)
			}
			return nil
		}}, nil
}

func (t *Tx) UpdateDevice(d *gatehouse.Device, prevETag string) error {
	tags, keys, values, err := tagParams(d.Tags)
	if err != nil {
		return fmt.Errorf("update device: %w", err)
	}
	// The CTE locks the row and reads its tags as they were, so that the
	// device_tags rows are rewritten only when the tags changed: most
	// updates (presence, reported properties) leave them alone.
	var sameTags bool
	err = t.tx.QueryRow(t.ctx, `
		WITH old AS (
			SELECT tags FROM devices WHERE scope = $1 AND id = $2 AND etag = $3 FOR UPDATE
		)
		UPDATE devices SET state = $4, conn_status = $5, last_seen = $6, tags = $7, config = $8,
			reported = $9, enrollment = $10, created_at = $11, updated_at = $12, etag = $13
		FROM old
		WHERE scope = $1 AND id = $2 AND etag = $3
		RETURNING old.tags = $7::jsonb`,
		d.Scope, d.ID, prevETag, string(d.State), string(d.Connection.Status), d.Connection.LastSeen, tags,
		nonNil(d.Config), nonNil(d.Reported), d.Enrollment, d.CreatedAt, d.UpdatedAt, d.ETag).Scan(&sameTags)
	if errors.Is(err, pgx.ErrNoRows) {
		var etag string
		err := t.tx.QueryRow(t.ctx, `SELECT etag FROM devices WHERE scope = $1 AND id = $2`, d.Scope, d.ID).Scan(&etag)
		if errors.Is(err, pgx.ErrNoRows) {
			return gatehouse.Errorf(gatehouse.ENotFound, "device %q not found", d.ID)
		} else if err != nil {
			return t.fail("update device", err)
		}
		return gatehouse.Errorf(gatehouse.EPreconditionFailed, "device %q has changed since it was read (etag %q, not %q); read it again and retry", d.ID, etag, prevETag)
	} else if err != nil {
		return t.fail("update device", err)
	}
	if sameTags {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM device_tags WHERE scope = $1 AND device_id = $2`, d.Scope, d.ID)
	b.Queue(`INSERT INTO device_tags (scope, device_id, key, value)
		SELECT $1, $2, k, v FROM unnest($3::text[], $4::text[]) AS kv(k, v)`, d.Scope, d.ID, keys, values)
	if err := t.tx.SendBatch(t.ctx, b).Close(); err != nil {
		return t.fail("update device tags", err)
	}
	return nil
}

func (t *Tx) DeleteDevice(scope, id string) error {
	// device_tags and device_history go with it (ON DELETE CASCADE).
	tag, err := t.tx.Exec(t.ctx, `DELETE FROM devices WHERE scope = $1 AND id = $2`, scope, id)
	if err != nil {
		return t.fail("delete device", err)
	}
	if tag.RowsAffected() == 0 {
		return gatehouse.Errorf(gatehouse.ENotFound, "device %q not found", id)
	}
	return nil
}

func (t *Tx) AddStateChange(scope, id string, c *gatehouse.StateChange) error {
	return t.write(t.addStateChange(scope, id, c), nil)
}

func (t *Tx) addStateChange(scope, id string, c *gatehouse.StateChange) queued {
	return queued{sql: `
		INSERT INTO device_history (scope, device_id, from_state, to_state, actor, reason, time)
		SELECT $1, $2, $3, $4, $5, $6, $7
		WHERE EXISTS (SELECT 1 FROM devices WHERE scope = $1 AND id = $2)`,
		args:      []any{scope, id, string(c.From), string(c.To), c.Actor, c.Reason, c.Time},
		refusable: true,
		check: rowsCheck("add state change", func() error {
			return gatehouse.Errorf(gatehouse.ENotFound, "device %q not found", id)
		})}
}

func (s *Store) DeviceHistory(ctx context.Context, scope, id string) ([]*gatehouse.StateChange, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT from_state, to_state, actor, reason, time FROM device_history
		WHERE scope = $1 AND device_id = $2 ORDER BY id`, scope, id)
	if err != nil {
		return nil, mapErr("device history", err)
	}
	changes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*gatehouse.StateChange, error) {
		c := &gatehouse.StateChange{}
		var from, to string
		err := row.Scan(&from, &to, &c.Actor, &c.Reason, &c.Time)
		c.From, c.To, c.Time = gatehouse.State(from), gatehouse.State(to), c.Time.UTC()
		return c, err
	})
	return changes, mapErr("device history", err)
}

// DefaultLimit is the page size of ListDevices when the filter sets none (as
// in store/sqlite).
const DefaultLimit = 100

func (s *Store) ListDevices(ctx context.Context, f gatehouse.DeviceFilter) ([]*gatehouse.Device, error) {
	query, args, err := listDevicesQuery(f)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, mapErr("list devices", err)
	}
	devices, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*gatehouse.Device, error) { return scanDevice(row) })
	return devices, mapErr("list devices", err)
}

// listDevicesQuery builds the SQL for f. Each tag selector becomes an EXISTS
// or NOT EXISTS on device_tags, which the planner turns into a semi- or
// anti-join on device_tags_kv_idx or the device_tags primary key. NOT EXISTS
// gives != and notin their meaning in TagSelector.Match: a device without
// the key matches.
func listDevicesQuery(f gatehouse.DeviceFilter) (string, []any, error) {
	var b strings.Builder
	args := []any{f.Scope, f.After}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	b.WriteString(`SELECT ` + deviceColumns + ` FROM devices d WHERE d.scope = $1 AND d.id > $2`)
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		fmt.Fprintf(&b, ` AND d.state = ANY(%s::text[])`, arg(states))
	}
	if f.Connection != "" {
		fmt.Fprintf(&b, ` AND d.conn_status = %s`, arg(string(f.Connection)))
	}
	// devices_last_seen_idx and devices_enrollment_idx answer these; a
	// NULL last_seen (never seen) fails both comparisons.
	if !f.LastSeenBefore.IsZero() {
		fmt.Fprintf(&b, ` AND d.last_seen < %s`, arg(f.LastSeenBefore.UTC()))
	}
	if !f.LastSeenAfter.IsZero() {
		fmt.Fprintf(&b, ` AND d.last_seen >= %s`, arg(f.LastSeenAfter.UTC()))
	}
	if f.Enrollment != "" {
		fmt.Fprintf(&b, ` AND d.enrollment = %s`, arg(f.Enrollment))
	}
	if len(f.Selectors) > gatehouse.MaxSelectors {
		return "", nil, gatehouse.Errorf(gatehouse.EInvalidSelector, "%d tag selectors; the limit is %d", len(f.Selectors), gatehouse.MaxSelectors)
	}
	for _, sel := range f.Selectors {
		// t.device_id > $2 repeats d.id > $2: the planner carries
		// equalities across a join, not ranges, and without it a merge
		// join on device_tags_kv_idx would read the key's entries from the
		// first device on, whatever the cursor.
		const tagRow = `SELECT 1 FROM device_tags t WHERE t.scope = d.scope AND t.device_id = d.id AND t.device_id > $2 AND t.key = `
		var cond string
		switch sel.Op {
		case gatehouse.SelEq, gatehouse.SelNotEq:
			if len(sel.Values) != 1 {
				return "", nil, gatehouse.Errorf(gatehouse.EInvalidSelector, "tag selector on %q needs exactly one value", sel.Key)
			}
			cond = fmt.Sprintf(`EXISTS (%s%s AND t.value = %s)`, tagRow, arg(sel.Key), arg(sel.Values[0]))
		case gatehouse.SelIn, gatehouse.SelNotIn:
			if len(sel.Values) == 0 {
				return "", nil, gatehouse.Errorf(gatehouse.EInvalidSelector, "tag selector on %q needs at least one value", sel.Key)
			}
			cond = fmt.Sprintf(`EXISTS (%s%s AND t.value = ANY(%s::text[]))`, tagRow, arg(sel.Key), arg(sel.Values))
		case gatehouse.SelExists, gatehouse.SelNotExists:
			cond = fmt.Sprintf(`EXISTS (%s%s)`, tagRow, arg(sel.Key))
		default:
			return "", nil, gatehouse.Errorf(gatehouse.EInvalidSelector, "unknown tag selector operator %q", sel.Op)
		}
		if sel.Op == gatehouse.SelNotEq || sel.Op == gatehouse.SelNotIn || sel.Op == gatehouse.SelNotExists {
			cond = "NOT " + cond
		}
		b.WriteString(" AND " + cond)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	b.WriteString(" ORDER BY d.id LIMIT " + arg(limit))
	return b.String(), args, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
