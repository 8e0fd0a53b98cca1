// Package metrics holds Gatehouse's Prometheus metrics: provisioning
// attempts, outcomes and latency (observed by the provisioning core), and a
// fleet collector that reads counts from the registry at scrape time
// (devices by state and connection, credentials expiring soon, webhook
// backlog), cached so that frequent scrapes cost one round of queries per
// CacheFor. It depends on no other Gatehouse package: the fleet is read
// through the small Fleet interface.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Default is the process's metric set; Observe records into it.
var Default = New()

// Observe records one provisioning attempt in Default: its dialect (dps,
// est, native, mqtt, coap...), its error code ("" for success) and how long
// it took.
func Observe(dialect, code string, d time.Duration) { Default.Observe(dialect, code, d) }

// Metrics is one set of collectors in its own registry.
type Metrics struct {
	reg          *prometheus.Registry
	attempts     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	storeLatency *prometheus.HistogramVec
	mu           sync.Mutex
	fleet        *fleetCollector
}

// New returns a fresh metric set, with the Go runtime and process
// collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_provisioning_attempts_total",
		Help: "Provisioning attempts by dialect and outcome (code: ok, or the error code).",
	}, []string{"dialect", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gatehouse_provisioning_duration_seconds",
		Help:    "Provisioning latency by dialect and outcome (ok or error).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"dialect", "outcome"})
	m.storeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gatehouse_store_duration_seconds",
		Help:    "Store operation latency by operation.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	}, []string{"op"})
	m.reg.MustRegister(m.attempts, m.latency, m.storeLatency,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{})) //nolint:staticcheck // the collectors package would pull database/sql into every front end
	return m
}

// Observe records one provisioning attempt.
func (m *Metrics) Observe(dialect, code string, d time.Duration) {
	if dialect == "" {
		dialect = "unknown"
	}
	outcome := "ok"
	if code != "" && code != "ok" {
		outcome = "error"
	} else {
		code = "ok"
	}
	m.attempts.WithLabelValues(dialect, code).Inc()
	m.latency.WithLabelValues(dialect, outcome).Observe(d.Seconds())
}

// ObserveStore records the latency of one store operation (op is a short
// fixed name such as "update" or "list_devices"; never an ID).
func (m *Metrics) ObserveStore(op string, d time.Duration) {
	m.storeLatency.WithLabelValues(op).Observe(d.Seconds())
}

// Fleet is what the fleet collector reads at scrape time.
type Fleet interface {
	// FleetCounts returns devices per scope and state, and per scope and
	// connection status.
	FleetCounts(ctx context.Context) (byState, byConn map[string]map[string]int64, err error)
	// ExpiringCredentials returns, per scope, active credentials that
	// expire within the window from now.
	ExpiringCredentials(ctx context.Context, within time.Duration) (map[string]int64, error)
	// WebhookBacklog returns undelivered events per scope and webhook ID.
	WebhookBacklog(ctx context.Context) (map[[2]string]int64, error)
}

// FleetOptions tune the fleet collector.
type FleetOptions struct {
	CacheFor     time.Duration // default 10s
	Timeout      time.Duration // per scrape; default 5s
	ExpiryWindow time.Duration // default 14 days
	Logger       *slog.Logger
	Now          func() time.Time
}

// SetFleet registers (or replaces the source of) the fleet collector.
func (m *Metrics) SetFleet(f Fleet, o FleetOptions) {
	if o.CacheFor <= 0 {
		o.CacheFor = 10 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.ExpiryWindow <= 0 {
		o.ExpiryWindow = 14 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fleet != nil {
		m.fleet.mu.Lock()
		m.fleet.src, m.fleet.opts, m.fleet.at = f, o, time.Time{}
		m.fleet.mu.Unlock()
		return
	}
	m.fleet = newFleetCollector(f, o)
	m.reg.MustRegister(m.fleet)
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is the underlying Prometheus registry (for tests and for
// registering more collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

var (
	devicesDesc    = prometheus.NewDesc("gatehouse_devices", "Devices by scope and lifecycle state.", []string{"scope", "state"}, nil)
	connectedDesc  = prometheus.NewDesc("gatehouse_devices_connection", "Devices by scope and connection status (online, offline).", []string{"scope", "status"}, nil)
	expiringDesc   = prometheus.NewDesc("gatehouse_credentials_expiring", "Active credentials expiring within the window (default 14 days), by scope.", []string{"scope"}, nil)
	backlogDesc    = prometheus.NewDesc("gatehouse_webhook_backlog_events", "Events not yet delivered per webhook (counted up to 1000).", []string{"scope", "webhook"}, nil)
	scrapeErrDesc  = prometheus.NewDesc("gatehouse_fleet_scrape_error", "1 if the last fleet query failed (the values shown are the last good ones).", nil, nil)
	scrapeTimeDesc = prometheus.NewDesc("gatehouse_fleet_scrape_timestamp_seconds", "When the fleet counts were last read from the store.", nil, nil)
)

// fleetCollector reads the fleet at scrape time, at most once per CacheFor.
type fleetCollector struct {
	mu      sync.Mutex
	src     Fleet
	opts    FleetOptions
	at      time.Time
	failed  bool
	state   map[string]map[string]int64
	conn    map[string]map[string]int64
	expire  map[string]int64
	backlog map[[2]string]int64
}

func newFleetCollector(f Fleet, o FleetOptions) *fleetCollector {
	return &fleetCollector{src: f, opts: o}
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{devicesDesc, connectedDesc, expiringDesc, backlogDesc, scrapeErrDesc, scrapeTimeDesc} {
		ch <- d
	}
}

func (c *fleetCollector) refresh() {
	now := c.opts.Now()
	if !c.at.IsZero() && now.Sub(c.at) < c.opts.CacheFor {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	state, conn, err := c.src.FleetCounts(ctx)
	var expire map[string]int64
	var backlog map[[2]string]int64
	if err == nil {
		expire, err = c.src.ExpiringCredentials(ctx, c.opts.ExpiryWindow)
	}
	if err == nil {
		backlog, err = c.src.WebhookBacklog(ctx)
	}
	if err != nil {
		c.opts.Logger.Error("metrics: read fleet", "err", err)
		c.failed = true
		c.at = now // do not hammer a failing database on every scrape
		return
	}
	c.failed, c.at = false, now
	c.state, c.conn, c.expire, c.backlog = state, conn, expire, backlog
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refresh()
	for scope, m := range c.state {
		for state, n := range m {
			ch <- prometheus.MustNewConstMetric(devicesDesc, prometheus.GaugeValue, float64(n), scope, state)
		}
	}
	for scope, m := range c.conn {
		for status, n := range m {
			ch <- prometheus.MustNewConstMetric(connectedDesc, prometheus.GaugeValue, float64(n), scope, status)
		}
	}
	for scope, n := range c.expire {
		ch <- prometheus.MustNewConstMetric(expiringDesc, prometheus.GaugeValue, float64(n), scope)
	}
	for k, n := range c.backlog {
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	failed := 0.0
	if c.failed {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, failed)
	ch <- prometheus.MustNewConstMetric(scrapeTimeDesc, prometheus.GaugeValue, float64(c.at.UnixNano())/1e9)
}
