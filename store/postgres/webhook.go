package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const webhookColumns = `scope, id, url, events, sealed_secret, created_at, created_by, delivered_seq, failures,
	next_attempt, last_error, generation, lease_owner, lease_until`

func scanWebhook(row pgx.Row) (*gatehouse.EventHook, error) {
	var w gatehouse.EventHook
	var events []byte
	var sealed []byte
	if err := row.Scan(&w.Scope, &w.ID, &w.URL, &events, &sealed, &w.CreatedAt, &w.CreatedBy, &w.DeliveredSeq,
		&w.Failures, &w.NextAttempt, &w.LastError, &w.Generation, &w.LeaseOwner, &w.LeaseUntil); err != nil {
		return nil, err
	}
	if len(sealed) > 0 {
		w.SealedSecret = sealed
	}
	if err := json.Unmarshal(events, &w.Events); err != nil {
		return nil, fmt.Errorf("decode webhook events: %w", err)
	}
	if len(w.Events) == 0 {
		w.Events = nil
	}
	w.CreatedAt, w.NextAttempt, w.LeaseUntil = w.CreatedAt.UTC(), w.NextAttempt.UTC(), w.LeaseUntil.UTC()
	return &w, nil
}

func getWebhook(ctx context.Context, q querier, scope, id, lock string) (*gatehouse.EventHook, error) {
	w, err := scanWebhook(q.QueryRow(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE scope = $1 AND id = $2`+lock, scope, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "webhook %q not found", id)
	}
	return w, mapErr("get webhook", err)
}

func (s *Store) GetWebhook(ctx context.Context, scope, id string) (*gatehouse.EventHook, error) {
	return getWebhook(ctx, s.pool, scope, id, "")
}

func (s *Store) ListWebhooks(ctx context.Context, scope string) ([]*gatehouse.EventHook, error) {
	q := `SELECT ` + webhookColumns + ` FROM webhooks ORDER BY scope, id`
	var args []any
	if scope != "" {
		q = `SELECT ` + webhookColumns + ` FROM webhooks WHERE scope = $1 ORDER BY id`
		args = append(args, scope)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, mapErr("list webhooks", err)
	}
	ws, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*gatehouse.EventHook, error) { return scanWebhook(row) })
	return ws, mapErr("list webhooks", err)
}

func (s *Store) ListDeadLetters(ctx context.Context, scope, webhookID string, after int64, limit int) ([]*gatehouse.DeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, type, attempts, last_error, time FROM webhook_dead_letters
		WHERE scope = $1 AND webhook_id = $2 AND seq > $3 ORDER BY seq LIMIT $4`, scope, webhookID, after, limit)
	if err != nil {
		return nil, mapErr("list dead letters", err)
	}
	ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*gatehouse.DeadLetter, error) {
		d := &gatehouse.DeadLetter{Scope: scope, WebhookID: webhookID}
		if err := row.Scan(&d.Seq, &d.Type, &d.Attempts, &d.LastError, &d.Time); err != nil {
			return nil, err
		}
		d.Time = d.Time.UTC()
		return d, nil
	})
	return ds, mapErr("list dead letters", err)
}

func (t *Tx) CreateWebhook(w *gatehouse.EventHook) error {
	events := w.Events
	if events == nil {
		events = []string{}
	}
	ev, err := json.Marshal(events)
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	tag, err := t.tx.Exec(t.ctx, `INSERT INTO webhooks (`+webhookColumns+`)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14
		WHERE EXISTS (SELECT 1 FROM scopes WHERE id = $1)
		ON CONFLICT DO NOTHING`,
		w.Scope, w.ID, w.URL, ev, nonNil(w.SealedSecret), w.CreatedAt, w.CreatedBy, w.DeliveredSeq,
		w.Failures, w.NextAttempt, w.LastError, w.Generation, w.LeaseOwner, w.LeaseUntil)
	if err != nil {
		return t.fail("create webhook", err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := getScope(t.ctx, t.tx, w.Scope); err != nil {
			return t.check(err)
		}
		return gatehouse.Errorf(gatehouse.EConflict, "webhook %q already exists", w.ID)
	}
	return nil
}

func (t *Tx) GetWebhook(scope, id string) (*gatehouse.EventHook, error) {
	w, err := getWebhook(t.ctx, t.tx, scope, id, " FOR UPDATE")
	return w, t.check(err)
}

func (t *Tx) UpdateWebhook(w *gatehouse.EventHook) error {
	tag, err := t.tx.Exec(t.ctx, `UPDATE webhooks SET delivered_seq = $3, failures = $4, next_attempt = $5,
		last_error = $6, generation = $7, lease_owner = $8, lease_until = $9 WHERE scope = $1 AND id = $2`,
		w.Scope, w.ID, w.DeliveredSeq, w.Failures, w.NextAttempt, w.LastError, w.Generation, w.LeaseOwner, w.LeaseUntil)
	return t.oneRow("update webhook", tag, err, "webhook", w.ID)
}

func (t *Tx) DeleteWebhook(scope, id string) error {
	if _, err := t.tx.Exec(t.ctx, `DELETE FROM webhook_dead_letters WHERE scope = $1 AND webhook_id = $2`, scope, id); err != nil {
		return t.fail("delete webhook", err)
	}
	tag, err := t.tx.Exec(t.ctx, `DELETE FROM webhooks WHERE scope = $1 AND id = $2`, scope, id)
	return t.oneRow("delete webhook", tag, err, "webhook", id)
}

func (t *Tx) AddDeadLetter(d *gatehouse.DeadLetter) error {
	tag, err := t.tx.Exec(t.ctx, `INSERT INTO webhook_dead_letters (scope, webhook_id, seq, type, attempts, last_error, time)
		SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM webhooks WHERE scope = $1 AND id = $2)
		ON CONFLICT (scope, webhook_id, seq) DO UPDATE SET type = EXCLUDED.type,
		attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error, time = EXCLUDED.time`,
		d.Scope, d.WebhookID, d.Seq, d.Type, d.Attempts, d.LastError, d.Time)
	return t.oneRow("add dead letter", tag, err, "webhook", d.WebhookID)
}

// oneRow turns "no row changed" into ENotFound.
func (t *Tx) oneRow(op string, tag pgconn.CommandTag, err error, kind, id string) error {
	if err != nil {
		return t.fail(op, err)
	}
	if tag.RowsAffected() == 0 {
		return gatehouse.Errorf(gatehouse.ENotFound, "%s %q not found", kind, id)
	}
	return nil
}

// QueryEvents filters the log; each filter column has an index
// (scope, column, seq) and the planner picks the most selective.
func (s *Store) QueryEvents(ctx context.Context, f gatehouse.EventFilter) ([]*gatehouse.Event, error) {
	if f.Limit <= 0 {
		f.Limit = gatehouse.MaxEventPage
	}
	query, args := eventQuery(f)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, mapErr("query events", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*gatehouse.Event, error) {
		e := &gatehouse.Event{}
		var data []byte
		if err := row.Scan(&e.Scope, &e.Seq, &e.Type, &e.Time, &e.Actor, &e.Subject, &data); err != nil {
			return nil, err
		}
		e.Time = e.Time.UTC()
		if data != nil {
			e.Data = data
		}
		return e, nil
	})
	return events, mapErr("query events", err)
}

// eventQuery builds the audit query of f (f.Limit set). Each filter has an
// index (scope, column, seq): actor, subject, time, and type, which is
// compared in "C" so that a prefix ("device.*") is a range of
// events_type_idx, whatever the database's collation.
func eventQuery(f gatehouse.EventFilter) (string, []any) {
	var b strings.Builder
	b.WriteString(`SELECT scope, seq, type, time, actor, subject, data FROM events WHERE scope = $1 AND seq > $2`)
	args := []any{f.Scope, f.After}
	add := func(cond string, v ...any) {
		for _, x := range v {
			args = append(args, x)
			cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(args)), 1)
		}
		b.WriteString(" AND " + cond)
	}
	if f.Actor != "" {
		add("actor = ?", f.Actor)
	}
	if f.Subject != "" {
		add("subject = ?", f.Subject)
	}
	if prefix, ok := strings.CutSuffix(f.Type, "*"); ok {
		if hi, ok := prefixEnd(prefix); ok {
			add(`type COLLATE "C" >= ? AND type COLLATE "C" < ?`, prefix, hi)
		} else {
			add("left(type, ?) = ?", len(prefix), prefix)
		}
	} else if f.Type != "" {
		add(`type COLLATE "C" = ?`, f.Type)
	}
	if !f.Since.IsZero() {
		add("time >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		add("time < ?", f.Until)
	}
	args = append(args, f.Limit)
	fmt.Fprintf(&b, " ORDER BY seq LIMIT $%d", len(args))
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
