package adminclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func webhooksPath(scope string) string { return "/v1/scopes/" + seg(scope) + "/webhooks" }

// CreateWebhook adds an event delivery webhook to scope. When req.Secret is
// empty the server generates one and returns it (only this once) in Secret.
func (c *Client) CreateWebhook(ctx context.Context, scope string, req registry.WebhookCreate) (*registry.WebhookInfo, error) {
	var w registry.WebhookInfo
	if err := c.do(ctx, request{method: http.MethodPost, path: webhooksPath(scope), body: req}, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// ListWebhooks lists a scope's webhooks with their delivery cursors.
func (c *Client) ListWebhooks(ctx context.Context, scope string) ([]*registry.WebhookInfo, error) {
	items, _, err := getList[*registry.WebhookInfo](ctx, c, request{method: http.MethodGet, path: webhooksPath(scope)})
	return items, err
}

// GetWebhook returns one webhook.
func (c *Client) GetWebhook(ctx context.Context, scope, id string) (*registry.WebhookInfo, error) {
	var w registry.WebhookInfo
	if err := c.do(ctx, request{method: http.MethodGet, path: webhooksPath(scope) + "/" + seg(id)}, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// DeleteWebhook removes a webhook and its dead letters.
func (c *Client) DeleteWebhook(ctx context.Context, scope, id string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: webhooksPath(scope) + "/" + seg(id)}, nil)
}

// DeadLetter is an event a webhook gave up delivering.
type DeadLetter struct {
	Seq       int64     `json:"seq"`
	Type      string    `json:"type"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"lastError"`
	Time      time.Time `json:"time"`
}

// DeadLetters lists up to limit dead letters of a webhook after sequence
// number after (limit 0: the server's default).
func (c *Client) DeadLetters(ctx context.Context, scope, id string, after int64, limit int) ([]*DeadLetter, error) {
	q := url.Values{"after": {strconv.FormatInt(after, 10)}}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	items, _, err := getList[*DeadLetter](ctx, c, request{method: http.MethodGet, path: webhooksPath(scope) + "/" + seg(id) + "/dead-letters", query: q})
	return items, err
}

// ReplayWebhook resumes a webhook's delivery with event fromSeq.
func (c *Client) ReplayWebhook(ctx context.Context, scope, id string, fromSeq int64) (*registry.WebhookInfo, error) {
	var w registry.WebhookInfo
	body := map[string]int64{"fromSeq": fromSeq}
	if err := c.do(ctx, request{method: http.MethodPost, path: webhooksPath(scope) + "/" + seg(id) + "/replay", body: body}, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// QueryEvents is the audit query: events of scope matching q (actor,
// subject, type or type prefix "device.*", time range), after q.After.
func (c *Client) QueryEvents(ctx context.Context, scope string, q registry.EventQuery) ([]*gatehouse.Event, error) {
	v := url.Values{"after": {strconv.FormatInt(q.After, 10)}}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	for k, s := range map[string]string{"actor": q.Actor, "subject": q.Subject, "type": q.Type} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	items, _, err := getList[*gatehouse.Event](ctx, c, request{method: http.MethodGet, path: eventsPath(scope), query: v})
	return items, err
}

// CountDevices counts scope's devices by "state", "connection" or
// "tag:<key>".
func (c *Client) CountDevices(ctx context.Context, scope, by string) (*registry.DeviceCounts, error) {
	var out registry.DeviceCounts
	q := url.Values{"by": {by}}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/scopes/" + seg(scope) + "/device-counts", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
