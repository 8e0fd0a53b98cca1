package metrics

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type fakeFleet struct {
	calls atomic.Int32
	fail  atomic.Bool
}

func (f *fakeFleet) FleetCounts(context.Context) (map[string]map[string]int64, map[string]map[string]int64, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return nil, nil, errors.New("database down")
	}
	return map[string]map[string]int64{"acme": {"active": 3}}, map[string]map[string]int64{"acme": {"online": 2, "offline": 1}}, nil
}

func (f *fakeFleet) ExpiringCredentials(context.Context, time.Duration) (map[string]int64, error) {
	return map[string]int64{"acme": 4}, nil
}

func (f *fakeFleet) WebhookBacklog(context.Context) (map[[2]string]int64, error) {
	return map[[2]string]int64{{"acme", "wh-1"}: 7}, nil
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: status %d", rec.Code)
	}
	return rec.Body.String()
}

func TestMetrics(t *testing.T) {
	m := New()
	m.Observe("dps", "", 3*time.Millisecond)
	m.Observe("dps", "unauthenticated", 1*time.Millisecond)
	m.Observe("est", "ok", 2*time.Second)
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	f := &fakeFleet{}
	m.SetFleet(f, FleetOptions{Now: clock})
	body := scrape(t, m)
	for _, want := range []string{
		`gatehouse_provisioning_attempts_total{code="ok",dialect="dps"} 1`,
		`gatehouse_provisioning_attempts_total{code="unauthenticated",dialect="dps"} 1`,
		`gatehouse_provisioning_duration_seconds_count{dialect="est",outcome="ok"} 1`,
		`gatehouse_devices{scope="acme",state="active"} 3`,
		`gatehouse_devices_connection{scope="acme",status="online"} 2`,
		`gatehouse_credentials_expiring{scope="acme"} 4`,
		`gatehouse_webhook_backlog_events{scope="acme",webhook="wh-1"} 7`,
		`gatehouse_fleet_scrape_error 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Cached: a second scrape within 10 s does not query.
	scrape(t, m)
	if n := f.calls.Load(); n != 1 {
		t.Errorf("fleet read %d times in one cache period, want 1", n)
	}
	// A failure keeps the last values and says so.
	now = now.Add(11 * time.Second)
	f.fail.Store(true)
	body = scrape(t, m)
	if !strings.Contains(body, `gatehouse_fleet_scrape_error 1`) || !strings.Contains(body, `gatehouse_devices{scope="acme",state="active"} 3`) {
		t.Errorf("after a failed read: %s", body)
	}
}
