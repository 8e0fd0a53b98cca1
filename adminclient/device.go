package adminclient

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func devicesPath(scope string) string { return "/v1/scopes/" + seg(scope) + "/devices" }

func devicePath(scope, id string) string { return devicesPath(scope) + "/" + seg(id) }

// CreateDevice registers a device; it starts in state provisioned.
func (c *Client) CreateDevice(ctx context.Context, scope string, req registry.DeviceCreate) (*gatehouse.Device, error) {
	var d gatehouse.Device
	if err := c.do(ctx, request{method: http.MethodPost, path: devicesPath(scope), body: req}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// GetDevice returns one device.
func (c *Client) GetDevice(ctx context.Context, scope, id string) (*gatehouse.Device, error) {
	var d gatehouse.Device
	if err := c.do(ctx, request{method: http.MethodGet, path: devicePath(scope, id)}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// ListOptions filters and pages a device listing. Filters combine with AND;
// several States match any of them.
type ListOptions struct {
	States     []gatehouse.State
	Connection gatehouse.ConnectionStatus // online, offline, or empty for both
	Tags       []string                   // tag selectors: k=v, k!=v, "k in (a,b)", "k notin (a,b)", k, !k
	Limit      int                        // page size; 0 for the server's default
	Cursor     string                     // NextCursor of the previous page; empty for the first

	LastSeenBefore time.Time // devices last seen before this time (exclusive); zero for no bound
	LastSeenAfter  time.Time // devices last seen at or after this time; zero for no bound
	Enrollment     string    // devices provisioned by this enrollment
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	for _, s := range o.States {
		q.Add("state", string(s))
	}
	if o.Connection != "" {
		q.Set("connection", string(o.Connection))
	}
	for _, t := range o.Tags {
		q.Add("tag", t)
	}
	if !o.LastSeenBefore.IsZero() {
		q.Set("lastSeenBefore", o.LastSeenBefore.Format(time.RFC3339Nano))
	}
	if !o.LastSeenAfter.IsZero() {
		q.Set("lastSeenAfter", o.LastSeenAfter.Format(time.RFC3339Nano))
	}
	if o.Enrollment != "" {
		q.Set("enrollment", o.Enrollment)
	}
	addPaging(q, o.Limit, o.Cursor)
	return q
}

// ListDevices returns one page of a scope's devices, ordered by ID. Pass
// the page's NextCursor as opts.Cursor for the next; it is empty on the last.
func (c *Client) ListDevices(ctx context.Context, scope string, opts ListOptions) (*registry.DevicePage, error) {
	items, next, err := getList[*gatehouse.Device](ctx, c, request{method: http.MethodGet, path: devicesPath(scope), query: opts.query()})
	if err != nil {
		return nil, err
	}
	return &registry.DevicePage{Items: items, NextCursor: next}, nil
}

// Devices iterates over every device matching opts, fetching pages as it
// goes. It yields an error (and stops) if a page cannot be fetched.
func (c *Client) Devices(ctx context.Context, scope string, opts ListOptions) iter.Seq2[*gatehouse.Device, error] {
	return pages(opts.Cursor, func(cursor string) ([]*gatehouse.Device, string, error) {
		opts.Cursor = cursor
		return getList[*gatehouse.Device](ctx, c, request{method: http.MethodGet, path: devicesPath(scope), query: opts.query()})
	})
}

// PatchDevice applies a JSON merge patch (RFC 7386) to a device's tags and
// config, e.g. {"tags":{"site":"b","old":null},"config":{"rate":5}}. ifMatch,
// if not empty, is the etag the device must still have
// (precondition_failed otherwise).
func (c *Client) PatchDevice(ctx context.Context, scope, id string, patch json.RawMessage, ifMatch string) (*gatehouse.Device, error) {
	var d gatehouse.Device
	r := request{method: http.MethodPatch, path: devicePath(scope, id), body: patch,
		contentType: "application/merge-patch+json", header: ifMatchHeader(ifMatch)}
	if err := c.do(ctx, r, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// SetState moves a device to another lifecycle state, recording reason in
// its history.
func (c *Client) SetState(ctx context.Context, scope, id string, state gatehouse.State, reason, ifMatch string) (*gatehouse.Device, error) {
	var d gatehouse.Device
	body := struct {
		State  gatehouse.State `json:"state"`
		Reason string          `json:"reason,omitempty"`
	}{state, reason}
	r := request{method: http.MethodPost, path: devicePath(scope, id) + "/state", body: body, header: ifMatchHeader(ifMatch)}
	if err := c.do(ctx, r, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// DeleteDevice removes a device. Only one never seen, or one
// decommissioned, may be deleted (conflict otherwise).
func (c *Client) DeleteDevice(ctx context.Context, scope, id, ifMatch string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: devicePath(scope, id), header: ifMatchHeader(ifMatch)}, nil)
}

// DeviceHistory returns a device's lifecycle history, oldest first.
func (c *Client) DeviceHistory(ctx context.Context, scope, id string) ([]*gatehouse.StateChange, error) {
	items, _, err := getList[*gatehouse.StateChange](ctx, c, request{method: http.MethodGet, path: devicePath(scope, id) + "/history"})
	return items, err
}

func ifMatchHeader(etag string) http.Header {
	if etag == "" {
		return nil
	}
	return http.Header{"If-Match": {quoteETag(etag)}}
}
