package httpapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

// faulty injects failures into a working registry.
type faulty struct {
	Registry
	ready     error                              // returned by Ready
	getDevice error                              // returned by GetDevice
	auth      error                              // returned by Authenticate
	panicList bool                               // ListScopes panics
	events    func() ([]*gatehouse.Event, error) // replaces Events
}

func (f faulty) Ready(ctx context.Context) error {
	if f.ready != nil {
		return f.ready
	}
	return f.Registry.Ready(ctx)
}

func (f faulty) Authenticate(ctx context.Context, token string) (*gatehouse.Principal, error) {
	if f.auth != nil {
		return nil, f.auth
	}
	return f.Registry.Authenticate(ctx, token)
}

func (f faulty) GetDevice(ctx context.Context, p *gatehouse.Principal, scope, id string) (*gatehouse.Device, error) {
	if f.getDevice != nil {
		return nil, f.getDevice
	}
	return f.Registry.GetDevice(ctx, p, scope, id)
}

func (f faulty) ListScopes(ctx context.Context, p *gatehouse.Principal) ([]*gatehouse.Scope, error) {
	if f.panicList {
		var m map[string]int
		m["boom"]++ // a nil map write: a real bug, not a panic(value)
	}
	return f.Registry.ListScopes(ctx, p)
}

func (f faulty) Events(ctx context.Context, p *gatehouse.Principal, scope string, after int64, limit int) ([]*gatehouse.Event, error) {
	if f.events != nil {
		return f.events()
	}
	return f.Registry.Events(ctx, p, scope, after, limit)
}

var _ Registry = faulty{}

func TestInternalErrors(t *testing.T) {
	cause := "disk on fire at /var/lib/secret-path"
	fail := func(f faulty) func(Registry) Registry {
		return func(r Registry) Registry { f.Registry = r; return f }
	}
	for _, tc := range []struct {
		name   string
		f      faulty
		method string
		path   string
		status int
		code   string
	}{
		{"readyz", faulty{ready: errors.New(cause)}, "GET", "/readyz", 503, gatehouse.EUnavailable},
		{"internal", faulty{getDevice: fmt.Errorf("get device: %w", errors.New(cause))}, "GET", "/v1/scopes/default/devices/x", 500, gatehouse.EInternal},
		{"unavailable", faulty{getDevice: fmt.Errorf("query: %w", &gatehouse.Error{Code: gatehouse.EUnavailable, Message: "the database is unavailable; retry later"})}, "GET", "/v1/scopes/default/devices/x", 503, gatehouse.EUnavailable},
		{"unavailable auth", faulty{auth: fmt.Errorf("%w: %s", gatehouse.Errorf(gatehouse.EUnavailable, "the database is unavailable"), cause)}, "GET", "/v1/scopes", 503, gatehouse.EUnavailable},
		{"unmapped code", faulty{getDevice: gatehouse.Errorf("weird", "%s", cause)}, "GET", "/v1/scopes/default/devices/x", 500, gatehouse.EInternal},
		{"panic", faulty{panicList: true}, "GET", "/v1/scopes", 500, gatehouse.EInternal},
		{"stream before start", faulty{events: func() ([]*gatehouse.Event, error) { return nil, errors.New(cause) }}, "GET", "/v1/scopes/default/events", 500, gatehouse.EInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, fail(tc.f))
			r := e.do(tc.method, tc.path, e.admin, nil)
			p := r.problem(t, tc.status, tc.code)
			if strings.Contains(string(r.body), "disk on fire") {
				t.Errorf("the cause reached the client: %s", r.body)
			}
			if tc.name != "unavailable" && tc.name != "panic" && strings.Count(e.logs.String(), "disk on fire") != 1 {
				t.Errorf("want the cause logged once, got:\n%s", e.logs.String())
			}
			if !strings.Contains(e.logs.String(), `"err"`) {
				t.Errorf("no err in the log:\n%s", e.logs.String())
			}
			if p.Instance != tc.path {
				t.Errorf("instance %q, want %q", p.Instance, tc.path)
			}
			// The server survives.
			e.do("GET", "/healthz", "", nil).want(t, 200)
		})
	}
}
