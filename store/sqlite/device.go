package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
)

const deviceColumns = `scope, id, state, conn_status, last_seen, tags, config, reported, enrollment, created_at, updated_at, etag`

func deviceName(scope, id string) string { return fmt.Sprintf("device %q in scope %q", id, scope) }

func scanDevice(sc scanner) (*gatehouse.Device, error) {
	var d gatehouse.Device
	var lastSeen sql.NullInt64
	var tags, config, reported []byte
	var created, updated int64
	// Into []byte, which Scan copies; a json.RawMessage destination would
	// alias the driver's buffer.
	err := sc.Scan(&d.Scope, &d.ID, &d.State, &d.Connection.Status, &lastSeen, &tags,
		&config, &reported, &d.Enrollment, &created, &updated, &d.ETag)
	if err != nil {
		return nil, err
	}
	d.Config, d.Reported = config, reported
	d.Connection.LastSeen = fromNullMicros(lastSeen)
	d.CreatedAt = fromMicros(created)
	d.UpdatedAt = fromMicros(updated)
	if d.Tags, err = decodeTags(tags); err != nil {
		return nil, fmt.Errorf("decode tags: %w", err)
	}
	return &d, nil
}

func encodeTags(tags map[string]string) (string, error) {
	if len(tags) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(tags)
	return string(b), err
}

// orEmpty keeps NOT NULL columns happy: a nil document is stored as empty
// bytes and read back as such.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func getDevice(ctx context.Context, c *stmtCache, scope, id string) (*gatehouse.Device, error) {
	d, err := scanDevice(c.queryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE scope = ? AND id = ?`, scope, id))
	if err != nil {
		return nil, storeError("get device", err, deviceName(scope, id), "")
	}
	return d, nil
}

// GetDevice implements gatehouse.Reader.
func (s *Store) GetDevice(ctx context.Context, scope, id string) (*gatehouse.Device, error) {
	return getDevice(ctx, s.reads, scope, id)
}

// ListDevices implements gatehouse.Reader. Tag selectors become
// subqueries on device_tags, which the index (scope, key, value, device_id)
// answers without touching devices; states and connection use their own
// (scope, column, id) indexes.
func (s *Store) ListDevices(ctx context.Context, f gatehouse.DeviceFilter) ([]*gatehouse.Device, error) {
	query, args := deviceQuery(f)
	rows, err := s.reads.query(ctx, query, args...)
	if err != nil {
		return nil, storeError("list devices", err, "devices", "")
	}
	defer rows.Close()
	var out []*gatehouse.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, storeError("list devices", err, "devices", "")
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError("list devices", err, "devices", "")
	}
	return out, nil
}

// DefaultLimit is the page size of ListDevices when the filter sets none.
const DefaultLimit = 100

// deviceQuery builds the SQL of a device filter. Pages are ordered by ID
// and start after f.After (keyset pagination), so the cost of a page is the
// rows it reads up to the LIMIT, not the size of the scope.
//
// The first positive tag selector drives the query from the tag index
// (scope, key, value, device_id). For k=v the index yields device IDs in
// order, so the join streams and stops at the LIMIT. For "k in (a,b,...)"
// with up to maxMergeArms values, each value is such a stream and the
// streams are merged (a compound SELECT ordered by device_id: SQLite merges
// its arms, each in index order, and stops at the LIMIT); with more values,
// and for "exists", the matching IDs after the cursor are collected first.
// Every other selector is a correlated [NOT] EXISTS answered by
// device_tags' primary key (scope, device_id, key): one lookup per candidate
// row. Without a positive selector, the scan runs over (scope, id), or
// (scope, state, id) per state (merged likewise when the filter names
// several) and (scope, conn_status, id) when it names a connection status,
// or (scope, last_seen, id) and (scope, enrollment, id) for the last-seen
// window and the enrollment. NULL never compares, so a device never seen
// falls outside any last-seen bound.
func deviceQuery(f gatehouse.DeviceFilter) (string, []any) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	driver := -1
	for i, sel := range f.Selectors {
		if sel.Op == gatehouse.SelEq || sel.Op == gatehouse.SelIn || sel.Op == gatehouse.SelExists {
			driver = i
			break
		}
	}
	var values []string // the driving selector's values, one merged arm each
	if driver >= 0 {
		switch sel := f.Selectors[driver]; {
		case sel.Op == gatehouse.SelEq:
			values = sel.Values[:1]
		case sel.Op == gatehouse.SelIn && len(distinct(sel.Values)) <= maxMergeArms:
			values = distinct(sel.Values)
		}
	}
	var (
		b    strings.Builder
		args []any
	)
	if len(values) > 0 {
		// Tags drive: one arm per value. The arms select t.scope and
		// t.device_id (equal to d's by the join) so that the order by
		// column 2 is the index's order and the merge needs no sort.
		sel := f.Selectors[driver]
		rest, restArgs := filterConditions(f, driver, true)
		for i, v := range values {
			if i > 0 {
				b.WriteString(` UNION ALL `)
			}
			// CROSS JOIN fixes the join order: tags first, in device_id order.
			b.WriteString(`SELECT ` + strings.Replace(deviceColumnsOf("d"), "d.scope, d.id,", "t.scope, t.device_id,", 1) + ` FROM device_tags t CROSS JOIN devices d
			ON d.scope = t.scope AND d.id = t.device_id
			WHERE t.scope = ? AND t.key = ? AND t.value = ? AND t.device_id > ?` + rest)
			args = append(args, f.Scope, sel.Key, v, f.After)
			args = append(args, restArgs...)
		}
		if len(values) == 1 {
			b.WriteString(` ORDER BY t.device_id LIMIT ?`)
		} else {
			b.WriteString(` ORDER BY 2 LIMIT ?`)
		}
		return b.String(), append(args, limit)
	}
	var inTags string // the driving "exists" or long "in" selector, as a condition
	if driver >= 0 {
		sel := f.Selectors[driver]
		inTags = ` AND d.id IN (SELECT device_id FROM device_tags WHERE scope = ? AND key = ?`
		args = append(args, f.Scope, sel.Key)
		if sel.Op == gatehouse.SelIn {
			inTags += ` AND value IN (` + placeholders(len(sel.Values)) + `)`
			args = appendStrings(args, sel.Values)
			// With "exists" this bound would steer SQLite to the primary
			// key of device_tags instead of the (key, value) index.
			inTags += ` AND device_id > ?`
			args = append(args, f.After)
		}
		inTags += `)`
	}
	inArgs := args
	args = nil
	// Without statistics SQLite walks (scope, id) for a last-seen bound,
	// the whole scope when few devices match; name the index instead:
	// a page then reads the devices in the window and sorts them by ID.
	// An enrollment (equality, ID order) or a tag selector drives first.
	lastSeen := driver < 0 && f.Enrollment == "" && (!f.LastSeenBefore.IsZero() || !f.LastSeenAfter.IsZero())
	if states := distinct(stateStrings(f.States)); !lastSeen && len(states) > 1 && len(states) <= maxMergeArms {
		// Several states: one arm per state on (scope, state, id), merged.
		rest, restArgs := filterConditions(f, driver, false)
		for i, st := range states {
			if i > 0 {
				b.WriteString(` UNION ALL `)
			}
			b.WriteString(`SELECT ` + deviceColumnsOf("d") + ` FROM devices d INDEXED BY devices_state
			WHERE d.scope = ? AND d.state = ? AND d.id > ?` + inTags + rest)
			args = append(args, f.Scope, st, f.After)
			args = append(args, inArgs...)
			args = append(args, restArgs...)
		}
		b.WriteString(` ORDER BY 2 LIMIT ?`)
		return b.String(), append(args, limit)
	}
	rest, restArgs := filterConditions(f, driver, false)
	if len(f.States) > 0 {
		rest = ` AND d.state IN (` + placeholders(len(f.States)) + `)` + rest
		restArgs = append(stateArgs(f.States), restArgs...)
	}
	index := ""
	if lastSeen {
		index = ` INDEXED BY devices_last_seen`
	}
	b.WriteString(`SELECT ` + deviceColumnsOf("d") + ` FROM devices d` + index + ` WHERE d.scope = ? AND d.id > ?` + inTags + rest + ` ORDER BY d.id LIMIT ?`)
	args = append(args, f.Scope, f.After)
	args = append(args, inArgs...)
	args = append(args, restArgs...)
	return b.String(), append(args, limit)
}

// maxMergeArms bounds the arms of a merged query (one per tag value or
// state): SQLite allows 500 in a compound SELECT, and past a few dozen the
// collected-IDs plan costs less than as many index streams.
const maxMergeArms = 32

// filterConditions returns the conditions of f other than the scope, the
// cursor, the driving selector (index driver, -1 for none) and, unless
// tagDriven, the states, which the caller places itself. When tags drive
// the query, the states are checked here and a unary + on every column of
// devices keeps SQLite from trying the state and connection indexes on the
// inner side of the join, where it would otherwise trade the primary-key
// lookup for a range scan.
func filterConditions(f gatehouse.DeviceFilter, driver int, tagDriven bool) (string, []any) {
	var (
		b    strings.Builder
		args []any
	)
	plus := ""
	if tagDriven {
		plus = "+"
		if len(f.States) > 0 {
			b.WriteString(` AND +d.state IN (` + placeholders(len(f.States)) + `)`)
			args = append(args, stateArgs(f.States)...)
		}
	}
	if f.Connection != "" {
		b.WriteString(` AND ` + plus + `d.conn_status = ?`)
		args = append(args, string(f.Connection))
	}
	if !f.LastSeenBefore.IsZero() {
		b.WriteString(` AND ` + plus + `d.last_seen < ?`)
		args = append(args, micros(f.LastSeenBefore))
	}
	if !f.LastSeenAfter.IsZero() {
		b.WriteString(` AND ` + plus + `d.last_seen >= ?`)
		args = append(args, micros(f.LastSeenAfter))
	}
	if f.Enrollment != "" {
		b.WriteString(` AND ` + plus + `d.enrollment = ?`)
		args = append(args, f.Enrollment)
	}
	for i, sel := range f.Selectors {
		if i == driver {
			continue
		}
		exists := "EXISTS"
		switch sel.Op {
		case gatehouse.SelNotEq, gatehouse.SelNotIn, gatehouse.SelNotExists:
			exists = "NOT EXISTS"
		}
		b.WriteString(` AND ` + exists + ` (SELECT 1 FROM device_tags x WHERE x.scope = d.scope AND x.device_id = d.id AND x.key = ?`)
		args = append(args, sel.Key)
		switch sel.Op {
		case gatehouse.SelEq, gatehouse.SelNotEq:
			b.WriteString(` AND x.value = ?`)
			args = append(args, sel.Values[0])
		case gatehouse.SelIn, gatehouse.SelNotIn:
			b.WriteString(` AND x.value IN (` + placeholders(len(sel.Values)) + `)`)
			args = appendStrings(args, sel.Values)
		}
		b.WriteString(`)`)
	}
	return b.String(), args
}

func stateStrings(states []gatehouse.State) []string {
	out := make([]string, len(states))
	for i, st := range states {
		out[i] = string(st)
	}
	return out
}

func stateArgs(states []gatehouse.State) []any { return appendStrings(nil, stateStrings(states)) }

// distinct returns vals without repeats, in their first order: a repeated
// value must not become a second merged arm (and a device twice).
func distinct(vals []string) []string {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func deviceColumnsOf(alias string) string {
	cols := strings.Split(deviceColumns, ", ")
	for i, c := range cols {
		cols[i] = alias + "." + c
	}
	return strings.Join(cols, ", ")
}

func appendStrings(args []any, vals []string) []any {
	for _, v := range vals {
		args = append(args, v)
	}
	return args
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// DeviceHistory implements gatehouse.Reader. A device that does not exist
// has no history: the result is empty, not an error.
func (s *Store) DeviceHistory(ctx context.Context, scope, id string) ([]*gatehouse.StateChange, error) {
	rows, err := s.reads.query(ctx, `SELECT from_state, to_state, actor, reason, time FROM device_history
		WHERE scope = ? AND device_id = ? ORDER BY seq`, scope, id)
	if err != nil {
		return nil, storeError("device history", err, deviceName(scope, id), "")
	}
	defer rows.Close()
	var out []*gatehouse.StateChange
	for rows.Next() {
		var c gatehouse.StateChange
		var us int64
		if err := rows.Scan(&c.From, &c.To, &c.Actor, &c.Reason, &us); err != nil {
			return nil, storeError("device history", err, deviceName(scope, id), "")
		}
		c.Time = fromMicros(us)
		out = append(out, &c)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError("device history", err, deviceName(scope, id), "")
	}
	return out, nil
}

func (t *tx) GetDevice(scope, id string) (*gatehouse.Device, error) {
	return getDevice(bg, t.q(), scope, id)
}

func (t *tx) CreateDevice(d *gatehouse.Device) error {
	name := deviceName(d.Scope, d.ID)
	tags, err := encodeTags(d.Tags)
	if err != nil {
		return fmt.Errorf("create device: encode tags: %w", err)
	}
	_, err = t.q().exec(bg, `INSERT INTO devices (`+deviceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.Scope, d.ID, string(d.State), string(d.Connection.Status), nullMicros(d.Connection.LastSeen), tags,
		orEmpty(d.Config), orEmpty(d.Reported), d.Enrollment, micros(d.CreatedAt), micros(d.UpdatedAt), d.ETag)
	if err != nil {
		return storeError("create device", err, name, fmt.Sprintf("scope %q", d.Scope))
	}
	for k, v := range d.Tags {
		if err := t.insertTag(d.Scope, d.ID, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) insertTag(scope, id, k, v string) error {
	_, err := t.q().exec(bg, `INSERT INTO device_tags (scope, device_id, key, value) VALUES (?, ?, ?, ?)`, scope, id, k, v)
	return storeError("write device tag", err, fmt.Sprintf("tag %q of %s", k, deviceName(scope, id)), deviceName(scope, id))
}

func (t *tx) UpdateDevice(d *gatehouse.Device, prevETag string) error {
	name := deviceName(d.Scope, d.ID)
	var etag string
	var oldTagsJSON []byte
	err := t.q().queryRow(bg, `SELECT etag, tags FROM devices WHERE scope = ? AND id = ?`, d.Scope, d.ID).Scan(&etag, &oldTagsJSON)
	if err != nil {
		return storeError("update device", err, name, "")
	}
	if etag != prevETag {
		return gatehouse.Errorf(gatehouse.EPreconditionFailed, "%s has changed since it was read (etag %q, not %q); read it again and retry", name, etag, prevETag)
	}
	tags, err := encodeTags(d.Tags)
	if err != nil {
		return fmt.Errorf("update device: encode tags: %w", err)
	}
	_, err = t.q().exec(bg, `UPDATE devices SET state = ?, conn_status = ?, last_seen = ?, tags = ?, config = ?, reported = ?,
		enrollment = ?, created_at = ?, updated_at = ?, etag = ? WHERE scope = ? AND id = ?`,
		string(d.State), string(d.Connection.Status), nullMicros(d.Connection.LastSeen), tags,
		orEmpty(d.Config), orEmpty(d.Reported), d.Enrollment, micros(d.CreatedAt), micros(d.UpdatedAt), d.ETag, d.Scope, d.ID)
	if err != nil {
		return storeError("update device", err, name, "")
	}
	if tags == string(oldTagsJSON) {
		return nil // the common case: a state or config change leaves the tag index alone
	}
	var old map[string]string
	if err := json.Unmarshal(oldTagsJSON, &old); err != nil {
		return fmt.Errorf("update device: decode stored tags: %w", err)
	}
	for k, v := range old {
		if nv, ok := d.Tags[k]; ok && nv == v {
			continue
		}
		if _, err := t.q().exec(bg, `DELETE FROM device_tags WHERE scope = ? AND device_id = ? AND key = ?`, d.Scope, d.ID, k); err != nil {
			return storeError("update device tags", err, name, "")
		}
	}
	for k, v := range d.Tags {
		if ov, ok := old[k]; ok && ov == v {
			continue
		}
		if err := t.insertTag(d.Scope, d.ID, k, v); err != nil {
			return err
		}
	}
	return nil
}

// DeleteDevice removes the device; its tags and history go with it by
// ON DELETE CASCADE. Its events stay: they are the audit log.
func (t *tx) DeleteDevice(scope, id string) error {
	res, err := t.q().exec(bg, `DELETE FROM devices WHERE scope = ? AND id = ?`, scope, id)
	if err != nil {
		return storeError("delete device", err, deviceName(scope, id), "")
	}
	return mustAffect(res, "delete device", deviceName(scope, id))
}

func (t *tx) AddStateChange(scope, id string, c *gatehouse.StateChange) error {
	_, err := t.q().exec(bg, `INSERT INTO device_history (scope, device_id, from_state, to_state, actor, reason, time)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, scope, id, string(c.From), string(c.To), c.Actor, c.Reason, micros(c.Time))
	return storeError("add state change", err, "state change of "+deviceName(scope, id), deviceName(scope, id))
}
