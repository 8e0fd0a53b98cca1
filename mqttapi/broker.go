package mqttapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/provision"
	"github.com/gatehouse-iot/gatehouse/ratelimit"
)

// Registry is what the broker needs of the registry.
type Registry interface {
	AuthenticateCertificate(ctx context.Context, scope string, leaf *x509.Certificate, intermediates []*x509.Certificate) (*gatehouse.Device, *gatehouse.Credential, error)
	DeviceByID(ctx context.Context, scope, id string) (*gatehouse.Device, error)
	DeviceConnected(scope, id, protocol string)
	DeviceDisconnected(scope, id, protocol string)
	ReportProperties(ctx context.Context, scope, id string, patch json.RawMessage) error
	DeviceSeen(scope, id, protocol string)
	FollowEvents(ctx context.Context, poll time.Duration, fn func(*gatehouse.Event)) error
	RecordTopicViolations(ctx context.Context, scope, id, protocol string, count int, sample string) error
	ScopePolicy(ctx context.Context, scope string) (gatehouse.ScopePolicy, error)
}

// Provisioner is what the broker needs of the provisioning core.
type Provisioner interface {
	Register(ctx context.Context, req provision.Request) (*provision.Result, error)
	Operation(ctx context.Context, req provision.Request, operationID string) (*gatehouse.Registration, *gatehouse.Device, error)
	Attest(ctx context.Context, req provision.Request) error
	AuthenticateDeviceSAS(ctx context.Context, scope, deviceID, sas, source string) (*gatehouse.Device, error)
}

// Limits bound what one client may do. Zero members take the defaults.
type Limits struct {
	MaxPacketSize      uint32        // bytes; default 64 KiB (the config and reported limits are 32 KiB)
	ConnectsPerSecond  float64       // new connections per source address; default 50
	ConnectBurst       int           // default 200
	ConnectTimeout     time.Duration // TLS handshake plus CONNECT; default 10 s
	ViolationThreshold int           // ACL violations of one session before it is logged as abusive and closed; default 20
	SessionExpiry      uint32        // seconds a disconnected persistent session is kept; default 3600
	MaxInflight        uint16        // QoS 1/2 messages in flight per client; default 64
	WritesPending      int32         // outbound queue per client; default 128
	ReportsPerSecond   float64       // reported-property writes per device; default 1
	ReportBurst        int           // default 10
}

// Bounds of the limits that have them (the protocol's own, or what
// keeps the broker usable).
const (
	MinPacketSize = 512       // a CONNECT with a SAS token (about 300 bytes) must fit
	MaxPacketSize = 268435455 // the largest MQTT packet
)

// Validate checks limits given by an operator; zero members are valid and
// take the defaults.
func (l Limits) Validate() error {
	switch {
	case l.MaxPacketSize != 0 && l.MaxPacketSize < MinPacketSize:
		return gatehouse.Errorf(gatehouse.EInvalid, "maximum packet size must be at least %d bytes", MinPacketSize)
	case l.MaxPacketSize > MaxPacketSize:
		return gatehouse.Errorf(gatehouse.EInvalid, "maximum packet size must be at most %d bytes", MaxPacketSize)
	case l.ConnectsPerSecond < 0 || l.ConnectBurst < 0 || l.ReportsPerSecond < 0 || l.ReportBurst < 0:
		return gatehouse.Errorf(gatehouse.EInvalid, "rates and bursts must not be negative")
	case l.ConnectTimeout < 0:
		return gatehouse.Errorf(gatehouse.EInvalid, "connect timeout must not be negative")
	case l.ViolationThreshold < 0:
		return gatehouse.Errorf(gatehouse.EInvalid, "violation threshold must not be negative")
	case l.WritesPending < 0:
		return gatehouse.Errorf(gatehouse.EInvalid, "outbound queue must not be negative")
	}
	return nil
}

// DefaultLimits returns the limits a zero Limits stands for.
func DefaultLimits() Limits { return Limits{}.withDefaults() }

func (l Limits) withDefaults() Limits {
	if l.MaxPacketSize == 0 {
		l.MaxPacketSize = 64 << 10
	}
	if l.ConnectsPerSecond <= 0 {
		l.ConnectsPerSecond = 50
	}
	if l.ConnectBurst < 1 {
		l.ConnectBurst = 200
	}
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = 10 * time.Second
	}
	if l.ViolationThreshold < 1 {
		l.ViolationThreshold = 20
	}
	if l.SessionExpiry == 0 {
		l.SessionExpiry = 3600
	}
	if l.MaxInflight == 0 {
		l.MaxInflight = 64
	}
	if l.WritesPending <= 0 {
		l.WritesPending = 128
	}
	if l.ReportsPerSecond <= 0 {
		l.ReportsPerSecond = 1
	}
	if l.ReportBurst < 1 {
		l.ReportBurst = 10
	}
	return l
}

// Option configures a Broker.
type Option func(*Broker)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(b *Broker) { b.log = l } }

// WithLimits sets the per-client limits.
func WithLimits(l Limits) Option { return func(b *Broker) { b.lim = l } }

// WithEventPoll sets how often the event log is polled for changes made by
// other nodes (commits on this node arrive at once); default 250 ms.
func WithEventPoll(d time.Duration) Option { return func(b *Broker) { b.poll = d } }

// Broker is the embedded MQTT broker.
type Broker struct {
	reg  Registry
	prov Provisioner
	log  *slog.Logger
	lim  Limits
	poll time.Duration
	srv  *mqtt.Server

	topics   *topicPolicies // per scope, reloaded on scope.updated
	connects *ratelimit.Limiter
	reports  *ratelimit.Limiter // per device: each report is a database write

	mu       sync.RWMutex
	sessions map[*mqtt.Client]*session
	byDevice sessionIndex         // scope/id -> device sessions
	bySerial sessionIndex         // scope/serial -> sessions that authenticated with it
	online   map[string]int       // scope/id -> established device sessions
	kills    map[string]time.Time // scope/id and scope/serial -> when enforcement last struck

	violations atomic.Int64
	refused    atomic.Int64

	nextID  atomic.Int64
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New returns a broker over the registry and the provisioning core. Add
// listeners, then Start it.
func New(reg Registry, prov Provisioner, opts ...Option) *Broker {
	b := &Broker{reg: reg, prov: prov, log: slog.New(slog.DiscardHandler), poll: 250 * time.Millisecond,
		sessions: map[*mqtt.Client]*session{}, byDevice: sessionIndex{},
		bySerial: sessionIndex{}, online: map[string]int{}, kills: map[string]time.Time{}}
	for _, o := range opts {
		o(b)
	}
	b.lim = b.lim.withDefaults()
	b.topics = newTopicPolicies(reg, b.log, 0)
	b.connects = ratelimit.New(b.lim.ConnectsPerSecond, b.lim.ConnectBurst, 100_000, time.Now)
	b.reports = ratelimit.New(b.lim.ReportsPerSecond, b.lim.ReportBurst, 100_000, time.Now)
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = b.lim.MaxPacketSize
	caps.MaximumSessionExpiryInterval = b.lim.SessionExpiry
	caps.MaximumClientWritesPending = b.lim.WritesPending
	caps.ReceiveMaximum = b.lim.MaxInflight
	caps.MaximumInflight = b.lim.MaxInflight
	caps.TopicAliasMaximum = 0 // topics are mounted per session; aliases would bypass the mount
	caps.SharedSubAvailable = 0
	caps.SubIDAvailable = 0
	caps.MaximumMessageExpiryInterval = 3600
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		InlineClient:           true,
		Logger:                 slog.New(&levelFloor{h: b.log.Handler(), min: slog.LevelError}),
		SysTopicResendInterval: 3600,
		// Device packets are small (config and reports are capped at
		// 32 KiB and read through): small buffers keep idle sessions cheap.
		ClientNetReadBufferSize:  256,
		ClientNetWriteBufferSize: 1024,
	})
	if err := b.srv.AddHook(&hook{b: b}, nil); err != nil {
		panic(err) // only fails for a nil hook
	}
	return b
}

// ListenTLS adds an MQTT-over-TLS listener. cfg should request (not
// require) client certificates: chains are verified per scope by the
// registry, not by the handshake. It returns the bound address.
func (b *Broker) ListenTLS(addr string, cfg *tls.Config) (net.Addr, error) {
	return b.listen("tls", addr, cfg)
}

// ListenTCP adds a plain MQTT listener (SAS and provisioning with tokens
// only: there is no certificate). Enable it only on a trusted network.
func (b *Broker) ListenTCP(addr string) (net.Addr, error) { return b.listen("tcp", addr, nil) }

func (b *Broker) listen(kind, addr string, cfg *tls.Config) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	l := &listener{id: fmt.Sprintf("%s-%d", kind, b.nextID.Add(1)), ln: ln, tls: cfg, b: b}
	if err := b.addListener(l); err != nil {
		ln.Close()
		return nil, err
	}
	return ln.Addr(), nil
}

// ListenWebSocket adds an MQTT-over-secure-WebSocket listener (path /mqtt
// or any). Client certificates are not available through it: devices
// authenticate with SAS tokens, provisioning with SAS or bootstrap tokens.
func (b *Broker) ListenWebSocket(addr string, cfg *tls.Config) error {
	return b.addListener(listeners.NewWebsocket(listeners.Config{ID: fmt.Sprintf("wss-%d", b.nextID.Add(1)), Address: addr, TLSConfig: cfg}))
}

func (b *Broker) addListener(l listeners.Listener) error {
	if err := b.srv.AddListener(l); err != nil {
		return err
	}
	b.mu.Lock()
	started := b.started
	b.mu.Unlock()
	if started {
		b.srv.Listeners.Serve(l.ID(), b.srv.EstablishConnection)
	}
	return nil
}

// Start serves the listeners and follows the event log for live
// enforcement until Close.
func (b *Broker) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	b.cancel = cancel
	b.done = make(chan struct{})
	if err := b.srv.Serve(); err != nil {
		cancel()
		return err
	}
	b.mu.Lock()
	b.started = true
	b.mu.Unlock()
	go func() {
		defer close(b.done)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := b.reg.FollowEvents(ctx, b.poll, b.enforce); err != nil && ctx.Err() == nil {
					b.log.Error("mqtt: follow events", "err", err)
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
				}
			}
		}()
		go func() {
			defer wg.Done()
			b.sweep(ctx)
		}()
		wg.Wait()
	}()
	return nil
}

// Close disconnects every client and stops the listeners.
func (b *Broker) Close() error {
	if b.cancel != nil {
		b.cancel()
		<-b.done
	}
	return b.srv.Close()
}

// Stats are counters for metrics and tests.
type Stats struct {
	Sessions       int   // authenticated connections
	DevicesOnline  int   // devices with at least one session
	ACLViolations  int64 // publishes and subscriptions refused
	RefusedConnect int64 // CONNECTs refused
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return Stats{Sessions: len(b.sessions), DevicesOnline: len(b.online), ACLViolations: b.violations.Load(), RefusedConnect: b.refused.Load()}
}

// sweep forgets sessions whose connection ended without a disconnect
// callback (a CONNACK that could not be written).
func (b *Broker) sweep(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var dead []*mqtt.Client
		b.mu.RLock()
		for cl, s := range b.sessions {
			if cl.Closed() && !s.established.Load() {
				dead = append(dead, cl)
			}
		}
		b.mu.RUnlock()
		for _, cl := range dead {
			b.forget(cl)
		}
		now := time.Now()
		b.mu.Lock()
		for k, at := range b.kills {
			if now.Sub(at) > killMemory {
				delete(b.kills, k)
			}
		}
		b.mu.Unlock()
	}
}

// killMemory is how long an enforcement action is remembered, so that a
// session authenticated just before it (whose index entry was not there
// yet) is refused too.
const killMemory = 10 * time.Second

// levelFloor drops records below min: the broker library logs every
// refused client at Warn, which is the caller's business, not an operator's.
type levelFloor struct {
	h   slog.Handler
	min slog.Level
}

func (l *levelFloor) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.h.Enabled(ctx, lv)
}
func (l *levelFloor) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }
func (l *levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	return &levelFloor{h: l.h.WithAttrs(a), min: l.min}
}
func (l *levelFloor) WithGroup(n string) slog.Handler {
	return &levelFloor{h: l.h.WithGroup(n), min: l.min}
}

// listener accepts TCP connections, applies the per-source connection rate
// and a deadline for the handshake and CONNECT, and wraps TLS.
type listener struct {
	id  string
	ln  net.Listener
	tls *tls.Config
	b   *Broker
	end atomic.Bool
}

func (l *listener) Init(*slog.Logger) error { return nil }
func (l *listener) ID() string              { return l.id }
func (l *listener) Address() string         { return l.ln.Addr().String() }
func (l *listener) Protocol() string {
	if l.tls != nil {
		return "tls"
	}
	return "tcp"
}

func (l *listener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if l.end.Load() {
			conn.Close()
			return
		}
		host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
		if ok, _ := l.b.connects.Allow(host); !ok {
			// Refused before the handshake: a flood costs no crypto.
			l.b.refused.Add(1)
			conn.Close()
			continue
		}
		conn.SetDeadline(time.Now().Add(l.b.lim.ConnectTimeout))
		go l.handshake(conn, establish)
	}
}

// handshake runs the TLS handshake, then hands the connection to the
// broker library on a new goroutine. The session's goroutine lives as
// long as the connection; one that ran the handshake's crypto would keep
// the stack it grew for it (tens of KB) for that long.
func (l *listener) handshake(c net.Conn, establish listeners.EstablishFn) {
	if l.tls != nil {
		tc := tls.Server(c, l.tls)
		if err := tc.Handshake(); err != nil {
			l.b.log.Debug("mqtt: TLS handshake", "remote", c.RemoteAddr().String(), "err", err)
			tc.Close()
			return
		}
		c = tc
	}
	cn := newConn(c, l.b.lim.MaxPacketSize)
	go func() {
		if err := establish(l.id, cn); err != nil {
			l.b.log.Debug("mqtt: connection ended", "remote", cn.RemoteAddr().String(), "err", err)
		}
	}()
}

func (l *listener) Close(closeClients listeners.CloseFn) {
	if l.end.CompareAndSwap(false, true) {
		closeClients(l.id)
	}
	l.ln.Close()
}

// publish sends a message from the broker itself to an internal topic.
func (b *Broker) publish(topic string, payload []byte, retain bool) {
	if err := b.srv.Publish(topic, payload, retain, 1); err != nil {
		b.log.Error("mqtt: publish", "err", err)
	}
}

// disconnect ends a session: MQTT 5 clients get a DISCONNECT with the
// reason code, 3.1.1 clients a closed connection.
func (b *Broker) disconnect(s *session, code packets.Code) {
	if s.cl.Properties.ProtocolVersion == 5 {
		_ = b.srv.DisconnectClient(s.cl, code)
		return
	}
	s.cl.Stop(code)
}

// refuse answers a CONNECT with a reason code (MQTT 5) or its 3.1.1
// return code.
func (b *Broker) refuse(cl *mqtt.Client, code packets.Code) {
	b.refused.Add(1)
	if cl.Properties.ProtocolVersion < 5 {
		code = v3ConnackCode(code)
	}
	_ = b.srv.SendConnack(cl, code, false, nil)
}

// v3ConnackCode maps an MQTT 5 CONNACK reason code to MQTT 3.1.1's six.
func v3ConnackCode(c packets.Code) packets.Code {
	switch c.Code {
	case packets.ErrClientIdentifierNotValid.Code:
		return packets.Code{Code: 0x02}
	case packets.ErrServerUnavailable.Code, packets.ErrServerBusy.Code:
		return packets.Code{Code: 0x03}
	case packets.ErrBadUsernameOrPassword.Code:
		return packets.Code{Code: 0x04}
	}
	return packets.Code{Code: 0x05} // not authorized
}
