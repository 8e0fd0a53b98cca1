package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
)

const webhookColumns = `scope, id, url, events, sealed_secret, created_at, created_by, delivered_seq, failures,
	next_attempt, last_error, generation, lease_owner, lease_until`

func webhookName(scope, id string) string { return fmt.Sprintf("webhook %q in scope %q", id, scope) }

func scanWebhook(sc scanner) (*gatehouse.EventHook, error) {
	var w gatehouse.EventHook
	var events string
	var created, next, lease int64
	var sealed []byte
	if err := sc.Scan(&w.Scope, &w.ID, &w.URL, &events, &sealed, &created, &w.CreatedBy, &w.DeliveredSeq,
		&w.Failures, &next, &w.LastError, &w.Generation, &w.LeaseOwner, &lease); err != nil {
		return nil, err
	}
	if len(sealed) > 0 {
		w.SealedSecret = sealed
	}
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return nil, fmt.Errorf("decode webhook events: %w", err)
	}
	if len(w.Events) == 0 {
		w.Events = nil
	}
	w.CreatedAt, w.NextAttempt, w.LeaseUntil = fromMicros(created), fromMicros(next), fromMicros(lease)
	return &w, nil
}

func getWebhook(ctx context.Context, c *stmtCache, scope, id string) (*gatehouse.EventHook, error) {
	w, err := scanWebhook(c.queryRow(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE scope = ? AND id = ?`, scope, id))
	if err != nil {
		return nil, storeError("get webhook", err, webhookName(scope, id), "")
	}
	return w, nil
}

// GetWebhook implements gatehouse.Reader.
func (s *Store) GetWebhook(ctx context.Context, scope, id string) (*gatehouse.EventHook, error) {
	return getWebhook(ctx, s.reads, scope, id)
}

// ListWebhooks implements gatehouse.Reader.
func (s *Store) ListWebhooks(ctx context.Context, scope string) ([]*gatehouse.EventHook, error) {
	q := `SELECT ` + webhookColumns + ` FROM webhooks ORDER BY scope, id`
	var args []any
	if scope != "" {
		q = `SELECT ` + webhookColumns + ` FROM webhooks WHERE scope = ? ORDER BY id`
		args = append(args, scope)
	}
	rows, err := s.reads.query(ctx, q, args...)
	if err != nil {
		return nil, storeError("list webhooks", err, "webhooks", "")
	}
	defer rows.Close()
	var out []*gatehouse.EventHook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, storeError("list webhooks", err, "webhooks", "")
		}
		out = append(out, w)
	}
	return out, storeError("list webhooks", rows.Err(), "webhooks", "")
}

// ListDeadLetters implements gatehouse.Reader.
func (s *Store) ListDeadLetters(ctx context.Context, scope, webhookID string, after int64, limit int) ([]*gatehouse.DeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.reads.query(ctx, `SELECT seq, type, attempts, last_error, time FROM webhook_dead_letters
		WHERE scope = ? AND webhook_id = ? AND seq > ? ORDER BY seq LIMIT ?`, scope, webhookID, after, limit)
	if err != nil {
		return nil, storeError("list dead letters", err, "dead letters", "")
	}
	defer rows.Close()
	var out []*gatehouse.DeadLetter
	for rows.Next() {
		d := gatehouse.DeadLetter{Scope: scope, WebhookID: webhookID}
		var at int64
		if err := rows.Scan(&d.Seq, &d.Type, &d.Attempts, &d.LastError, &at); err != nil {
			return nil, storeError("list dead letters", err, "dead letters", "")
		}
		d.Time = fromMicros(at)
		out = append(out, &d)
	}
	return out, storeError("list dead letters", rows.Err(), "dead letters", "")
}

func encodeEvents(events []string) (string, error) {
	if len(events) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(events)
	return string(b), err
}

func (t *tx) CreateWebhook(w *gatehouse.EventHook) error {
	events, err := encodeEvents(w.Events)
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	_, err = t.q().exec(bg, `INSERT INTO webhooks (`+webhookColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.Scope, w.ID, w.URL, events, orEmpty(w.SealedSecret), micros(w.CreatedAt), w.CreatedBy, w.DeliveredSeq,
		w.Failures, micros(w.NextAttempt), w.LastError, w.Generation, w.LeaseOwner, micros(w.LeaseUntil))
	return storeError("create webhook", err, webhookName(w.Scope, w.ID), fmt.Sprintf("scope %q", w.Scope))
}

// GetWebhook implements gatehouse.Tx; the single writer is the lock.
func (t *tx) GetWebhook(scope, id string) (*gatehouse.EventHook, error) {
	return getWebhook(bg, t.q(), scope, id)
}

func (t *tx) UpdateWebhook(w *gatehouse.EventHook) error {
	res, err := t.q().exec(bg, `UPDATE webhooks SET delivered_seq = ?, failures = ?, next_attempt = ?, last_error = ?,
		generation = ?, lease_owner = ?, lease_until = ? WHERE scope = ? AND id = ?`,
		w.DeliveredSeq, w.Failures, micros(w.NextAttempt), w.LastError, w.Generation, w.LeaseOwner, micros(w.LeaseUntil), w.Scope, w.ID)
	return affectedOne("update webhook", res, err, webhookName(w.Scope, w.ID))
}

func (t *tx) DeleteWebhook(scope, id string) error {
	if _, err := t.q().exec(bg, `DELETE FROM webhook_dead_letters WHERE scope = ? AND webhook_id = ?`, scope, id); err != nil {
		return storeError("delete webhook", err, webhookName(scope, id), "")
	}
	res, err := t.q().exec(bg, `DELETE FROM webhooks WHERE scope = ? AND id = ?`, scope, id)
	return affectedOne("delete webhook", res, err, webhookName(scope, id))
}

func (t *tx) AddDeadLetter(d *gatehouse.DeadLetter) error {
	_, err := t.q().exec(bg, `INSERT INTO webhook_dead_letters (scope, webhook_id, seq, type, attempts, last_error, time)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, webhook_id, seq) DO UPDATE SET type = excluded.type,
		attempts = excluded.attempts, last_error = excluded.last_error, time = excluded.time`,
		d.Scope, d.WebhookID, d.Seq, d.Type, d.Attempts, d.LastError, micros(d.Time))
	return storeError("add dead letter", err, fmt.Sprintf("dead letter %d of %s", d.Seq, webhookName(d.Scope, d.WebhookID)),
		webhookName(d.Scope, d.WebhookID))
}

// affectedOne turns "no row changed" into ENotFound.
func affectedOne(op string, res interface{ RowsAffected() (int64, error) }, err error, what string) error {
	if err != nil {
		return storeError(op, err, what, "")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return storeError(op, err, what, "")
	}
	if n == 0 {
		return gatehouse.Errorf(gatehouse.ENotFound, "%s not found", what)
	}
	return nil
}

// QueryEvents implements gatehouse.Reader.
func (s *Store) QueryEvents(ctx context.Context, f gatehouse.EventFilter) ([]*gatehouse.Event, error) {
	if f.Limit <= 0 {
		f.Limit = gatehouse.MaxEventPage
	}
	query, args := eventQuery(f)
	rows, err := s.reads.query(ctx, query, args...)
	if err != nil {
		return nil, storeError("query events", err, "events", "")
	}
	defer rows.Close()
	var out []*gatehouse.Event
	for rows.Next() {
		e := gatehouse.Event{Scope: f.Scope}
		var us int64
		var data []byte
		if err := rows.Scan(&e.Seq, &e.Type, &us, &e.Actor, &e.Subject, &data); err != nil {
			return nil, storeError("query events", err, "events", "")
		}
		e.Time = fromMicros(us)
		if len(data) > 0 {
			e.Data = data
		}
		out = append(out, &e)
	}
	return out, storeError("query events", rows.Err(), "events", "")
}

// eventQuery builds the audit query of f. Each filter has an index (scope,
// column, seq): subject, actor, type and time. Left to itself SQLite (which
// has no statistics) walks the primary key in seq order to save a sort, that
// is the whole log after the cursor for a rare actor; so the query names the
// index of the most selective filter given, in that order. An equality
// keeps seq order; a type prefix ("device.*") and a time window are ranges
// whose matching rows are sorted (plan_filter_test.go).
func eventQuery(f gatehouse.EventFilter) (string, []any) {
	var b strings.Builder
	index := ""
	switch {
	case f.Subject != "":
		index = " INDEXED BY events_subject"
	case f.Actor != "":
		index = " INDEXED BY events_actor"
	case f.Type != "" && f.Type != "*":
		index = " INDEXED BY events_type"
	case !f.Since.IsZero() || !f.Until.IsZero():
		index = " INDEXED BY events_time"
	}
	b.WriteString(`SELECT seq, type, time, actor, subject, data FROM events` + index + ` WHERE scope = ? AND seq > ?`)
	args := []any{f.Scope, f.After}
	if f.Actor != "" {
		b.WriteString(` AND actor = ?`)
		args = append(args, f.Actor)
	}
	if f.Subject != "" {
		b.WriteString(` AND subject = ?`)
		args = append(args, f.Subject)
	}
	if prefix, ok := strings.CutSuffix(f.Type, "*"); ok {
		if hi, ok := prefixEnd(prefix); ok {
			b.WriteString(` AND type >= ? AND type < ?`)
			args = append(args, prefix, hi)
		} else {
			b.WriteString(` AND substr(type, 1, ?) = ?`)
			args = append(args, len(prefix), prefix)
		}
	} else if f.Type != "" {
		b.WriteString(` AND type = ?`)
		args = append(args, f.Type)
	}
	if !f.Since.IsZero() {
		b.WriteString(` AND time >= ?`)
		args = append(args, micros(f.Since))
	}
	if !f.Until.IsZero() {
		b.WriteString(` AND time < ?`)
		args = append(args, micros(f.Until))
	}
	b.WriteString(` ORDER BY seq LIMIT ?`)
	args = append(args, f.Limit)
	return b.String(), args
}

// prefixEnd returns the least string greater than every string that starts
// with prefix (byte order), when prefix is ASCII (event types are) and not
// empty; false otherwise.
func prefixEnd(prefix string) (string, bool) {
	if prefix == "" {
		return "", false
	}
	for i := 0; i < len(prefix); i++ {
		if prefix[i] >= 0x7f {
			return "", false
		}
	}
	return prefix[:len(prefix)-1] + string(prefix[len(prefix)-1]+1), true
}
