package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// Event types of the webhook admin operations (they are audited like any
// other change, and delivered like any other event).
const (
	EventWebhookCreated  = "webhook.created"
	EventWebhookDeleted  = "webhook.deleted"
	EventWebhookReplayed = "webhook.replayed"
)

// Bounds on webhooks.
const (
	maxWebhookURLLen    = 2048
	maxWebhookFilters   = 32
	maxWebhookFilterLen = 64
	minWebhookSecretLen = 16
	maxWebhookSecretLen = 256
	maxWebhooksPerScope = 32
	webhookSecretBytes  = 32
)

// WebhookCreate is a request for a new event delivery webhook.
type WebhookCreate struct {
	URL string `json:"url"`
	// Secret signs every delivery (HMAC-SHA256). Write only; if empty, one
	// is generated and returned once.
	Secret string   `json:"secret,omitempty"`
	Events []string `json:"events,omitempty"`
}

// WebhookInfo is a webhook as the API shows it: never its secret.
type WebhookInfo struct {
	ID           string     `json:"id"`
	Scope        string     `json:"scope"`
	URL          string     `json:"url"`
	Events       []string   `json:"events"`
	CreatedAt    time.Time  `json:"createdAt"`
	CreatedBy    string     `json:"createdBy"`
	DeliveredSeq int64      `json:"deliveredSeq"`
	Failures     int        `json:"failures"`
	LastError    string     `json:"lastError,omitempty"`
	NextAttempt  *time.Time `json:"nextAttempt,omitempty"`
	// Secret is set only in the answer to a create that generated it.
	Secret string `json:"secret,omitempty"`
}

func webhookInfo(w *gatehouse.EventHook) *WebhookInfo {
	info := &WebhookInfo{
		ID: w.ID, Scope: w.Scope, URL: w.URL, Events: w.Events, CreatedAt: w.CreatedAt, CreatedBy: w.CreatedBy,
		DeliveredSeq: w.DeliveredSeq, Failures: w.Failures, LastError: w.LastError,
	}
	if info.Events == nil {
		info.Events = []string{}
	}
	if w.Failures > 0 && !w.NextAttempt.IsZero() {
		t := w.NextAttempt
		info.NextAttempt = &t
	}
	return info
}

func webhookAAD(scope, id string) []byte { return []byte("webhook:" + scope + "/" + id) }

// validateWebhookURL accepts https URLs, and http only to a loopback host
// (a receiver on the same machine): deliveries carry the scope's events.
func validateWebhookURL(raw string) error {
	if len(raw) > maxWebhookURLLen {
		return gatehouse.Errorf(gatehouse.EInvalid, "url is %d characters long; the limit is %d", len(raw), maxWebhookURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return gatehouse.Errorf(gatehouse.EInvalid, "url must be an absolute https URL")
	}
	if u.User != nil {
		return gatehouse.Errorf(gatehouse.EInvalid, "url must not carry credentials; the signature authenticates deliveries")
	}
	if u.Fragment != "" {
		return gatehouse.Errorf(gatehouse.EInvalid, "url must not have a fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
		return gatehouse.Errorf(gatehouse.EInvalid, "url must use https (plain http only to a loopback address)")
	}
	return gatehouse.Errorf(gatehouse.EInvalid, "url must use https")
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// validateEventFilters accepts "*", exact event types, and prefixes ending
// in ".*" ("device.*").
func validateEventFilters(fs []string) error {
	if len(fs) > maxWebhookFilters {
		return gatehouse.Errorf(gatehouse.EInvalid, "events has %d filters; the limit is %d", len(fs), maxWebhookFilters)
	}
	for _, f := range fs {
		if err := validateEventType(f); err != nil {
			return err
		}
	}
	return nil
}

func validateEventType(f string) error {
	if f == "*" {
		return nil
	}
	body, _ := strings.CutSuffix(f, ".*")
	if body == "" || len(f) > maxWebhookFilterLen {
		return gatehouse.Errorf(gatehouse.EInvalid, "event type filter %q must be a type (device.created), a prefix (device.*) or *", truncateString(f, 64))
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			return gatehouse.Errorf(gatehouse.EInvalid, "event type filter %q has an invalid character; use lowercase letters, digits, . and _, with an optional trailing .*", truncateString(f, 64))
		}
	}
	return nil
}

// matchEvent reports whether an event type passes a webhook's filters (no
// filters: every event).
func matchEvent(filters []string, typ string) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if f == "*" || f == typ {
			return true
		}
		if p, ok := strings.CutSuffix(f, "*"); ok && strings.HasPrefix(typ, p) {
			return true
		}
	}
	return false
}

func newWebhookID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "wh-" + hex.EncodeToString(b)
}

// CreateWebhook adds an event delivery webhook to a scope. Delivery starts
// after the scope's latest event: a new webhook receives what happens from
// now on (replay reaches back).
func (s *Service) CreateWebhook(ctx context.Context, p *gatehouse.Principal, scope string, req WebhookCreate) (*WebhookInfo, error) {
	if err := p.Authorize(scope, gatehouse.RoleAdmin); err != nil {
		return nil, err
	}
	if err := validateWebhookURL(req.URL); err != nil {
		return nil, err
	}
	if err := validateEventFilters(req.Events); err != nil {
		return nil, err
	}
	generated := ""
	if req.Secret == "" {
		b := make([]byte, webhookSecretBytes)
		rand.Read(b)
		generated = hex.EncodeToString(b)
		req.Secret = generated
	} else if len(req.Secret) < minWebhookSecretLen || len(req.Secret) > maxWebhookSecretLen {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "secret must be %d to %d characters (or omitted, and one is generated)", minWebhookSecretLen, maxWebhookSecretLen)
	}
	if s.keyring == nil {
		return nil, gatehouse.Errorf(gatehouse.EPreconditionFailed, "this registry has no keyring to seal webhook secrets")
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	existing, err := s.store.ListWebhooks(ctx, scope)
	if err != nil {
		return nil, err
	}
	if len(existing) >= maxWebhooksPerScope {
		return nil, gatehouse.Errorf(gatehouse.EConflict, "scope %q has %d webhooks, the limit; delete one first", scope, len(existing))
	}
	now := s.timestamp()
	w := &gatehouse.EventHook{Scope: scope, ID: newWebhookID(), URL: req.URL, Events: req.Events, CreatedAt: now, CreatedBy: p.Actor(), NextAttempt: now, LeaseUntil: now}
	if len(w.Events) == 0 {
		w.Events = nil
	}
	sealed, err := s.keyring.Seal([]byte(req.Secret), webhookAAD(scope, w.ID))
	if err != nil {
		return nil, fmt.Errorf("seal webhook secret: %w", err)
	}
	w.SealedSecret = sealed
	// Start after the latest event. One committed meanwhile may be
	// delivered too: at least once, never less.
	if w.DeliveredSeq, err = s.lastSeq(ctx, scope); err != nil {
		return nil, err
	}
	err = s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		if err := tx.CreateWebhook(w); err != nil {
			return err
		}
		return ev.append(scope, EventWebhookCreated, p.Actor(), "webhooks/"+w.ID, now, map[string]any{"id": w.ID, "url": w.URL, "events": webhookInfo(w).Events})
	})
	if err != nil {
		return nil, err
	}
	info := webhookInfo(w)
	info.Secret = generated
	return info, nil
}

// lastSeq returns the scope's latest event sequence number. The store has
// no direct query for it, so it pages to the end of the log (a new
// webhook's creation is rare; the log is read at most once).
func (s *Service) lastSeq(ctx context.Context, scope string) (int64, error) {
	var last int64
	for {
		evs, err := s.store.ListEvents(ctx, scope, last, gatehouse.MaxEventPage)
		if err != nil {
			return 0, err
		}
		if len(evs) == 0 {
			return last, nil
		}
		last = evs[len(evs)-1].Seq
		if len(evs) < gatehouse.MaxEventPage {
			return last, nil
		}
	}
}

// GetWebhook returns one webhook.
func (s *Service) GetWebhook(ctx context.Context, p *gatehouse.Principal, scope, id string) (*WebhookInfo, error) {
	if err := p.Authorize(scope, gatehouse.RoleAdmin); err != nil {
		return nil, err
	}
	w, err := s.store.GetWebhook(ctx, scope, id)
	if err != nil {
		return nil, webhookNotFound(err, id)
	}
	return webhookInfo(w), nil
}

// ListWebhooks returns a scope's webhooks.
func (s *Service) ListWebhooks(ctx context.Context, p *gatehouse.Principal, scope string) ([]*WebhookInfo, error) {
	if err := p.Authorize(scope, gatehouse.RoleAdmin); err != nil {
		return nil, err
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	ws, err := s.store.ListWebhooks(ctx, scope)
	if err != nil {
		return nil, err
	}
	out := make([]*WebhookInfo, 0, len(ws))
	for _, w := range ws {
		out = append(out, webhookInfo(w))
	}
	return out, nil
}

// DeleteWebhook removes a webhook and its dead letters; delivery stops.
func (s *Service) DeleteWebhook(ctx context.Context, p *gatehouse.Principal, scope, id string) error {
	if err := p.Authorize(scope, gatehouse.RoleAdmin); err != nil {
		return err
	}
	now := s.timestamp()
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		if err := tx.DeleteWebhook(scope, id); err != nil {
			return err
		}
		return ev.append(scope, EventWebhookDeleted, p.Actor(), "webhooks/"+id, now, map[string]string{"id": id})
	})
	return webhookNotFound(err, id)
}

// DeadLetters returns a webhook's dead letters after a sequence number.
func (s *Service) DeadLetters(ctx context.Context, p *gatehouse.Principal, scope, id string, after int64, limit int) ([]*gatehouse.DeadLetter, error) {
	if err := p.Authorize(scope, gatehouse.RoleAdmin); err != nil {
		return nil, err
	}
	switch {
	case after < 0:
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "after must be a sequence number >= 0")
	case limit == 0:
		limit = DefaultPageSize
	case limit < 0 || limit > gatehouse.MaxEventPage:
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "limit must be between 1 and %d", gatehouse.MaxEventPage)
	}
	if _, err := s.store.GetWebhook(ctx, scope, id); err != nil {
		return nil, webhookNotFound(err, id)
	}
	dls, err := s.store.ListDeadLetters(ctx, scope, id, after, limit)
	if dls == nil && err == nil {
		dls = []*gatehouse.DeadLetter{}
	}
	return dls, err
}

// ReplayWebhook moves a webhook's cursor so that delivery resumes with
// event fromSeq (earlier or later than where it was). A delivery in flight
// on any node finishes (the receiver may see it twice) and then stops: the
// replay bumps the webhook's generation, and progress of an older
// generation is not written.
func (s *Service) ReplayWebhook(ctx context.Context, p *gatehouse.Principal, scope, id string, fromSeq int64) (*WebhookInfo, error) {
	if err := p.Authorize(scope, gatehouse.RoleAdmin); err != nil {
		return nil, err
	}
	if fromSeq < 1 {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "fromSeq must be an event sequence number (1 or more)")
	}
	now := s.timestamp()
	var out *gatehouse.EventHook
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		w, err := tx.GetWebhook(scope, id)
		if err != nil {
			return err
		}
		w.DeliveredSeq = fromSeq - 1
		w.Failures, w.LastError, w.NextAttempt = 0, "", now
		w.Generation++
		w.LeaseOwner, w.LeaseUntil = "", now
		if err := tx.UpdateWebhook(w); err != nil {
			return err
		}
		out = w
		return ev.append(scope, EventWebhookReplayed, p.Actor(), "webhooks/"+id, now, map[string]any{"id": id, "fromSeq": fromSeq})
	})
	if err != nil {
		return nil, webhookNotFound(err, id)
	}
	return webhookInfo(out), nil
}

func webhookNotFound(err error, id string) error {
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return gatehouse.Errorf(gatehouse.ENotFound, "webhook %q not found", truncateString(id, 64))
	}
	return err
}

// EventQuery filters the audit query.
type EventQuery struct {
	After   int64
	Limit   int
	Actor   string
	Subject string
	Type    string // exact, or a prefix ending ".*"
	Since   time.Time
	Until   time.Time
}

// QueryEvents is the audit query: who did what, when.
func (s *Service) QueryEvents(ctx context.Context, p *gatehouse.Principal, scope string, q EventQuery) ([]*gatehouse.Event, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	if q.After < 0 {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "after must be a sequence number >= 0")
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultPageSize
	case q.Limit < 0 || q.Limit > gatehouse.MaxEventPage:
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "limit must be between 1 and %d", gatehouse.MaxEventPage)
	}
	if q.Type != "" {
		if err := validateEventType(q.Type); err != nil {
			return nil, err
		}
		if q.Type == "*" {
			q.Type = ""
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "since must be before until")
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	evs, err := s.store.QueryEvents(ctx, gatehouse.EventFilter{
		Scope: scope, After: q.After, Limit: q.Limit, Actor: q.Actor, Subject: q.Subject, Type: q.Type,
		Since: q.Since.UTC(), Until: q.Until.UTC(),
	})
	if evs == nil && err == nil {
		evs = []*gatehouse.Event{}
	}
	return evs, err
}
