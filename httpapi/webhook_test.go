package httpapi

import (
	"net/url"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func TestWebhookRoutes(t *testing.T) {
	e := newEnv(t, nil)
	var w registry.WebhookInfo
	e.do("POST", "/v1/scopes/default/webhooks", e.admin, map[string]any{"url": "https://example.com/h", "events": []string{"device.*"}}).want(t, 201).decode(t, &w)
	if w.ID == "" || len(w.Secret) != 64 || w.URL != "https://example.com/h" {
		t.Fatalf("created webhook: %+v", w)
	}
	var list struct{ Items []registry.WebhookInfo }
	e.do("GET", "/v1/scopes/default/webhooks", e.admin, nil).want(t, 200).decode(t, &list)
	if len(list.Items) != 1 || list.Items[0].Secret != "" {
		t.Errorf("list: %+v", list)
	}
	e.do("GET", "/v1/scopes/default/webhooks/"+w.ID, e.admin, nil).want(t, 200)
	e.do("GET", "/v1/scopes/default/webhooks/"+w.ID+"/dead-letters", e.admin, nil).want(t, 200)
	e.do("POST", "/v1/scopes/default/webhooks/"+w.ID+"/replay", e.admin, map[string]any{"fromSeq": 1}).want(t, 200)
	e.do("POST", "/v1/scopes/default/webhooks/"+w.ID+"/replay", e.admin, map[string]any{"fromSeq": 0}).problem(t, 400, gatehouse.EInvalid)
	e.do("POST", "/v1/scopes/default/webhooks", e.admin, map[string]any{"url": "http://example.com/h"}).problem(t, 400, gatehouse.EInvalid)
	e.do("POST", "/v1/scopes/default/webhooks", e.admin, map[string]any{"url": "https://example.com/h", "x": 1}).problem(t, 400, gatehouse.EUnknownField)
	e.do("DELETE", "/v1/scopes/default/webhooks/"+w.ID, e.admin, nil).want(t, 204)
	e.do("GET", "/v1/scopes/default/webhooks/"+w.ID, e.admin, nil).problem(t, 404, gatehouse.ENotFound)
}

func TestAuditQueryAndCounts(t *testing.T) {
	e := newEnv(t, nil)
	start := time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
	e.mustDevice("dev-1", map[string]string{"site": "north"})
	e.mustDevice("dev-2", nil)
	operator, _ := e.mustToken("default", gatehouse.RoleOperator)
	e.do("PATCH", "/v1/scopes/default/devices/dev-2", operator, map[string]any{"tags": map[string]string{"site": "south"}}, "Content-Type", "application/merge-patch+json").want(t, 200)

	var evs struct{ Items []gatehouse.Event }
	q := url.Values{"subject": {"devices/dev-2"}, "since": {start}}
	e.do("GET", "/v1/scopes/default/events?"+q.Encode(), e.admin, nil).want(t, 200).decode(t, &evs)
	if len(evs.Items) != 2 || evs.Items[0].Type != gatehouse.EventDeviceCreated || evs.Items[1].Type != gatehouse.EventDeviceUpdated {
		t.Errorf("subject filter: %+v", evs.Items)
	}
	e.do("GET", "/v1/scopes/default/events?type=device.updated", e.admin, nil).want(t, 200).decode(t, &evs)
	if len(evs.Items) != 1 || evs.Items[0].Actor == "" || evs.Items[0].Subject != "devices/dev-2" {
		t.Errorf("type filter: %+v", evs.Items)
	}
	e.do("GET", "/v1/scopes/default/events?type=device.*&until=2000-01-01T00:00:00Z", e.admin, nil).want(t, 200).decode(t, &evs)
	if len(evs.Items) != 0 {
		t.Errorf("until 2000: %+v", evs.Items)
	}
	e.do("GET", "/v1/scopes/default/events?since=yesterday", e.admin, nil).problem(t, 400, gatehouse.EInvalid)
	e.do("GET", "/v1/scopes/default/events?type=Bad%20Type", e.admin, nil).problem(t, 400, gatehouse.EInvalid)
	e.do("GET", "/v1/scopes/default/events?actor=x", e.admin, nil, "Accept", "text/event-stream").problem(t, 400, gatehouse.EInvalid)

	var c registry.DeviceCounts
	e.do("GET", "/v1/scopes/default/device-counts?by=tag:site", e.admin, nil).want(t, 200).decode(t, &c)
	if c.Total != 2 || c.Counts["north"] != 1 || c.Counts["south"] != 1 {
		t.Errorf("counts by tag: %+v", c)
	}
	e.do("GET", "/v1/scopes/default/device-counts", e.admin, nil).want(t, 200).decode(t, &c)
	if c.By != "state" || c.Counts["provisioned"] != 2 {
		t.Errorf("counts by state: %+v", c)
	}
	e.do("GET", "/v1/scopes/default/device-counts?by=color", e.admin, nil).problem(t, 400, gatehouse.EInvalid)
}
