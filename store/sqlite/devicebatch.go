package sqlite

import (
	"fmt"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
)

// Bulk statements write many rows each: with a pure Go driver the cost of
// a statement is mostly the call, not the row, so a multi-row INSERT of 64
// devices costs little more than one. Chunk sizes keep every statement
// well under SQLite's 32766 parameters and give few distinct shapes for
// the statement cache (full chunks, plus one remainder per batch).
const (
	deviceChunk  = 64
	tagChunk     = 256
	historyChunk = 128
	lookupChunk  = 500
)

// GetDevices implements gatehouse.Tx. The writer holds the database's one
// write lock, so what it reads cannot change before the batch commits.
func (t *tx) GetDevices(scope string, ids []string) (map[string]*gatehouse.Device, error) {
	out := make(map[string]*gatehouse.Device, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), lookupChunk)
		args := make([]any, 0, n+1)
		args = append(args, scope)
		args = appendStrings(args, ids[:n])
		rows, err := t.q().query(bg, `SELECT `+deviceColumns+` FROM devices WHERE scope = ? AND id IN (`+placeholders(n)+`)`, args...)
		if err != nil {
			return nil, storeError("get devices", err, "devices", "")
		}
		for rows.Next() {
			d, err := scanDevice(rows)
			if err != nil {
				rows.Close()
				return nil, storeError("get devices", err, "devices", "")
			}
			out[d.ID] = d
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, storeError("get devices", err, "devices", "")
		}
		ids = ids[n:]
	}
	return out, nil
}

// CreateDevices implements gatehouse.Tx, inside a savepoint of its own so
// that a conflict part way leaves nothing behind.
func (t *tx) CreateDevices(ds []*gatehouse.Device, changes []*gatehouse.StateChange) error {
	if len(ds) != len(changes) {
		return fmt.Errorf("create devices: %d devices but %d state changes", len(ds), len(changes))
	}
	if len(ds) == 0 {
		return nil
	}
	if err := t.w.exec(`SAVEPOINT bulk`); err != nil {
		return storeError("create devices", err, "devices", "")
	}
	err := t.createDevices(ds, changes)
	if err != nil {
		if rerr := t.w.exec(`ROLLBACK TO bulk`); rerr != nil {
			return storeError("create devices", rerr, "devices", "")
		}
	}
	if rerr := t.w.exec(`RELEASE bulk`); rerr != nil && err == nil {
		err = storeError("create devices", rerr, "devices", "")
	}
	return err
}

func (t *tx) createDevices(ds []*gatehouse.Device, changes []*gatehouse.StateChange) error {
	scope := ds[0].Scope
	var tagArgs []any
	for start := 0; start < len(ds); start += deviceChunk {
		chunk := ds[start:min(len(ds), start+deviceChunk)]
		args := make([]any, 0, 12*len(chunk))
		for _, d := range chunk {
			tags, err := encodeTags(d.Tags)
			if err != nil {
				return fmt.Errorf("create devices: encode tags: %w", err)
			}
			args = append(args, d.Scope, d.ID, string(d.State), string(d.Connection.Status), nullMicros(d.Connection.LastSeen), tags,
				orEmpty(d.Config), orEmpty(d.Reported), d.Enrollment, micros(d.CreatedAt), micros(d.UpdatedAt), d.ETag)
			for k, v := range d.Tags {
				tagArgs = append(tagArgs, d.Scope, d.ID, k, v)
			}
		}
		q := `INSERT INTO devices (` + deviceColumns + `) VALUES ` + rowsOf(len(chunk), 12)
		if _, err := t.q().exec(bg, q, args...); err != nil {
			return storeError("create devices", err, fmt.Sprintf("one of %d devices in scope %q", len(ds), scope), fmt.Sprintf("scope %q", scope))
		}
	}
	for start := 0; start < len(tagArgs); start += 4 * tagChunk {
		chunk := tagArgs[start:min(len(tagArgs), start+4*tagChunk)]
		q := `INSERT INTO device_tags (scope, device_id, key, value) VALUES ` + rowsOf(len(chunk)/4, 4)
		if _, err := t.q().exec(bg, q, chunk...); err != nil {
			return storeError("create devices: write tags", err, "device tags", "")
		}
	}
	for start := 0; start < len(ds); start += historyChunk {
		end := min(len(ds), start+historyChunk)
		args := make([]any, 0, 7*(end-start))
		for i := start; i < end; i++ {
			c := changes[i]
			args = append(args, ds[i].Scope, ds[i].ID, string(c.From), string(c.To), c.Actor, c.Reason, micros(c.Time))
		}
		q := `INSERT INTO device_history (scope, device_id, from_state, to_state, actor, reason, time) VALUES ` + rowsOf(end-start, 7)
		if _, err := t.q().exec(bg, q, args...); err != nil {
			return storeError("create devices: write history", err, "device history", "")
		}
	}
	return nil
}

// rowsOf returns n parenthesised groups of cols placeholders.
func rowsOf(n, cols int) string {
	row := "(" + placeholders(cols) + ")"
	var b strings.Builder
	b.Grow(n * (len(row) + 2))
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}
