package coapapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/provision"
)

// Provisioner is what the CoAP front end needs of the provisioning core.
type Provisioner interface {
	Register(ctx context.Context, req provision.Request) (*provision.Result, error)
	RegisterPSK(ctx context.Context, id provision.PSKIdentity, req provision.Request) (*provision.Result, error)
	Reenroll(ctx context.Context, scope string, chain []*x509.Certificate, csr []byte, source string) (*provision.Result, error)
	CAChain(ctx context.Context, scope string) ([]*x509.Certificate, error)
	DevicePSK(ctx context.Context, scope, enrollmentID, registrationID string) ([]byte, error)
	PSKDevice(ctx context.Context, id provision.PSKIdentity) (string, error)
}

// Registry is what the CoAP front end needs of the registry.
type Registry interface {
	AuthenticateCertificate(ctx context.Context, scope string, leaf *x509.Certificate, intermediates []*x509.Certificate) (*gatehouse.Device, *gatehouse.Credential, error)
	DeviceByID(ctx context.Context, scope, id string) (*gatehouse.Device, error)
	SymmetricKeyUsable(ctx context.Context, d *gatehouse.Device) error
	DeviceSeen(scope, id, protocol string)
	ReportProperties(ctx context.Context, scope, id string, patch json.RawMessage) error
	FollowEvents(ctx context.Context, poll time.Duration, fn func(*gatehouse.Event)) error
}

// Defaults; see the options.
const (
	// A DTLS session holds a few KiB; sessions idle this long are closed
	// (an observing device keeps its session alive by answering, or
	// re-registers when it wakes).
	defaultIdleTimeout = 2 * time.Minute
	defaultMaxSessions = 50_000
	handshakeTimeout   = 10 * time.Second
	pskLookupTimeout   = 5 * time.Second
)

// Server serves CoAP. Create it with New, start listeners with ListenDTLS
// and ListenUDP, stop it with Close.
type Server struct {
	prov        Provisioner
	reg         Registry
	log         *slog.Logger
	idleTimeout time.Duration
	maxSessions int64
	sessions    atomic.Int64
	obs         *observers

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closers   []func()
	wg        sync.WaitGroup
	following bool
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithIdleTimeout sets how long an idle DTLS session lives.
func WithIdleTimeout(d time.Duration) Option { return func(s *Server) { s.idleTimeout = d } }

// WithMaxSessions bounds the DTLS sessions open at once; handshakes beyond
// it are refused.
func WithMaxSessions(n int) Option { return func(s *Server) { s.maxSessions = int64(n) } }

// New returns a CoAP server over the provisioning core and the registry.
func New(prov Provisioner, reg Registry, opts ...Option) *Server {
	s := &Server{prov: prov, reg: reg, log: slog.New(slog.DiscardHandler), idleTimeout: defaultIdleTimeout,
		maxSessions: defaultMaxSessions, obs: newObservers()}
	for _, o := range opts {
		o(s)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// cipherSuites: PSK with AES-CCM-8 (RFC 7252's mandatory suite) and
// AES-GCM (what libcoap over OpenSSL offers first), ECDHE-PSK for forward
// secrecy where the device supports it, and ECDHE-ECDSA for certificates.
var cipherSuites = []piondtls.CipherSuiteID{
	piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
	piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
	piondtls.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
	piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
	piondtls.TLS_PSK_WITH_AES_128_CCM_8,
	piondtls.TLS_PSK_WITH_AES_128_CCM,
}

// ListenDTLS serves CoAP over DTLS 1.2 on addr (UDP) with pre-shared keys
// and, with cert, certificates; it returns the bound address.
func (s *Server) ListenDTLS(addr string, cert tls.Certificate) (net.Addr, error) {
	dopts := []piondtls.ServerOption{
		piondtls.WithPSK(s.pskFor),
		piondtls.WithCipherSuites(cipherSuites...),
		piondtls.WithExtendedMasterSecret(piondtls.RequestExtendedMasterSecret),
		piondtls.WithOnConnectionAttempt(func(net.Addr) error {
			if s.sessions.Load() >= s.maxSessions {
				return errors.New("too many DTLS sessions")
			}
			return nil
		}),
	}
	if len(cert.Certificate) > 0 {
		// Which CA a device certificate must lead to depends on the scope
		// and enrollment: the handshake asks for a certificate and checks
		// the proof of possession; the request handlers verify the chain.
		dopts = append(dopts, piondtls.WithCertificates(cert), piondtls.WithClientAuth(piondtls.RequestClientCert))
	}
	ln, err := coapnet.NewDTLSListener("udp", addr, coapnet.NewDTLSServerOptions(dopts...))
	if err != nil {
		return nil, err
	}
	srv := dtls.NewServer(
		options.WithContext(s.ctx),
		options.WithHandlerFunc(func(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) { s.serve(w, r, true) }),
		options.WithBlockwise(true, blockwise.SZX1024, 30*time.Second),
		options.WithMaxMessageSize(maxMessageBytes),
		options.WithErrors(s.coapError),
		options.WithInactivityMonitor(s.idleTimeout, func(cc *udpClient.Conn) { cc.Close() }),
		options.WithDTLSHandshakeTimeout(handshakeTimeout),
		options.WithOnNewConn(s.onNewConn),
	)
	s.serveInBackground(func() error { return srv.Serve(ln) }, func() { srv.Stop(); ln.Close() })
	return ln.Addr(), nil
}

// ListenUDP serves plain CoAP on addr: discovery only.
func (s *Server) ListenUDP(addr string) (net.Addr, error) {
	ln, err := coapnet.NewListenUDP("udp", addr)
	if err != nil {
		return nil, err
	}
	srv := udp.NewServer(
		options.WithContext(s.ctx),
		options.WithHandlerFunc(func(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) { s.serve(w, r, false) }),
		options.WithBlockwise(true, blockwise.SZX1024, 30*time.Second),
		options.WithMaxMessageSize(4<<10),
		options.WithErrors(s.coapError),
		options.WithInactivityMonitor(30*time.Second, func(cc *udpClient.Conn) { cc.Close() }),
	)
	s.serveInBackground(func() error { return srv.Serve(ln) }, func() { srv.Stop(); ln.Close() })
	return ln.LocalAddr(), nil
}

func (s *Server) serveInBackground(serve func() error, stop func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closers = append(s.closers, stop)
	if !s.following {
		s.following = true
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.reg.FollowEvents(s.ctx, time.Second, s.onEvent); err != nil && s.ctx.Err() == nil {
				s.log.Error("coap: follow events", "err", err)
			}
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := serve(); err != nil && s.ctx.Err() == nil {
			s.log.Error("coap: serve", "err", err)
		}
	}()
}

// Close stops every listener and ends every session.
func (s *Server) Close() error {
	s.cancel()
	s.mu.Lock()
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	for _, c := range closers {
		c()
	}
	s.wg.Wait()
	return nil
}

func (s *Server) coapError(err error) {
	if s.ctx.Err() == nil {
		s.log.Debug("coap", "err", err)
	}
}

func (s *Server) onNewConn(cc *udpClient.Conn) {
	s.sessions.Add(1)
	cc.AddOnClose(func() {
		s.sessions.Add(-1)
		s.obs.dropConn(cc)
	})
}

// pskFor is the DTLS PSK callback. Whatever the identity, it returns a key
// and no error: an identity that names no key (malformed, unknown,
// ambiguous) gets a decoy, so its handshake fails with the same alert as a
// wrong key. An error would end the handshake differently, and sooner.
func (s *Server) pskFor(identity []byte) ([]byte, error) {
	id, err := provision.ParsePSKIdentity(string(identity))
	if err != nil {
		return provision.DecoyPSK(string(identity)), nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, pskLookupTimeout)
	defer cancel()
	key, err := s.prov.DevicePSK(ctx, id.Scope, id.EnrollmentID, id.RegistrationID)
	if err != nil {
		s.log.Error("coap: psk lookup", "scope", id.Scope, "device_id", id.RegistrationID, "err", err)
		return provision.DecoyPSK(string(identity)), nil
	}
	return key, nil
}

// responseWriter is go-coap's response writer for UDP and DTLS.
type responseWriter = *responsewriter.ResponseWriter[*udpClient.Conn]

// request is one CoAP request as the handlers see it.
type request struct {
	ctx    context.Context
	msg    *pool.Message
	path   string
	peer   peer
	secure bool
}

// peer is who sent a request: the DTLS identity, if any.
type peer struct {
	psk    *provision.PSKIdentity
	chain  []*x509.Certificate
	source string
}

func peerOf(cc *udpClient.Conn) peer {
	p := peer{source: cc.RemoteAddr().String()}
	if host, _, err := net.SplitHostPort(p.source); err == nil {
		p.source = host
	}
	dc, ok := cc.NetConn().(*piondtls.Conn)
	if !ok {
		return p
	}
	st, ok := dc.ConnectionState()
	if !ok {
		return p
	}
	if len(st.PeerCertificates) > 0 {
		for _, raw := range st.PeerCertificates {
			c, err := x509.ParseCertificate(raw)
			if err != nil {
				return peer{source: p.source}
			}
			p.chain = append(p.chain, c)
		}
		return p
	}
	if len(st.IdentityHint) > 0 {
		if id, err := provision.ParsePSKIdentity(string(st.IdentityHint)); err == nil {
			p.psk = &id
		}
	}
	return p
}

// knownOptions are the options this server understands; a request with an
// unknown critical (odd-numbered) option is refused with 4.02 (RFC 7252
// section 5.4.1).
var knownOptions = map[message.OptionID]bool{
	message.IfMatch: true, message.URIHost: true, message.ETag: true, message.IfNoneMatch: true,
	message.Observe: true, message.URIPort: true, message.LocationPath: true, message.URIPath: true,
	message.ContentFormat: true, message.MaxAge: true, message.URIQuery: true, message.Accept: true,
	message.LocationQuery: true, message.Block2: true, message.Block1: true, message.Size2: true,
	message.ProxyURI: true, message.ProxyScheme: true, message.Size1: true, message.NoResponse: true,
	252: true, // Echo (RFC 9175)
	292: true, // Request-Tag (RFC 9175)
}

func (s *Server) serve(w responseWriter, m *pool.Message, secure bool) {
	if c := m.Code(); c < codes.GET || c > codes.IPATCH {
		return
	}
	for _, o := range m.Options() {
		if !knownOptions[o.ID] && o.ID&1 == 1 {
			s.writeError(w, &request{path: "?"}, gatehouse.Errorf(eBadOption, "option %d is critical and not understood", o.ID))
			return
		}
	}
	path, err := m.Options().Path()
	if err != nil {
		path = "/"
	}
	r := &request{ctx: m.Context(), msg: m, path: path, secure: secure}
	if secure {
		r.peer = peerOf(w.Conn())
	}
	if err := s.route(w, r); err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) route(w responseWriter, r *request) error {
	switch {
	case r.path == "/.well-known/core":
		return s.discovery(w, r)
	case !r.secure:
		return gatehouse.Errorf(gatehouse.EUnauthenticated, "plain CoAP serves only /.well-known/core")
	case r.path == "/.well-known/est" || strings.HasPrefix(r.path, "/.well-known/est/"):
		return s.est(w, r, strings.TrimPrefix(strings.TrimPrefix(r.path, "/.well-known/est"), "/"))
	case r.path == pathProvision:
		return s.provision(w, r)
	case r.path == pathConfig:
		return s.config(w, r)
	case r.path == pathReported:
		return s.reported(w, r)
	}
	return gatehouse.Errorf(gatehouse.ENotFound, "no resource %s; GET /.well-known/core lists them", truncate(r.path, 64))
}

func (s *Server) writeError(w responseWriter, r *request, err error) {
	resp := errorResponse(err)
	if !resp.known || resp.code == codes.InternalServerError {
		s.log.Error("coap request failed", "path", r.path, "source", r.peer.source, "code", gatehouse.ErrorCode(err), "err", err)
	} else {
		s.log.Debug("coap request refused", "path", r.path, "source", r.peer.source, "code", gatehouse.ErrorCode(err), "err", err)
	}
	s.writeResponse(w, resp)
}

func (s *Server) writeResponse(w responseWriter, resp response) {
	if err := resp.write(w); err != nil {
		s.log.Debug("coap: write response", "err", err)
	}
}

func methodNotAllowed(r *request, allowed string) error {
	return gatehouse.Errorf(gatehouse.EMethodNotAllowed, "%s takes %s", r.path, allowed)
}

// readBody returns a request's payload (reassembled from its Block1 blocks
// by go-coap, within maxMessageBytes).
func readBody(r *request, limit int) ([]byte, error) {
	if r.msg.Body() == nil {
		return nil, nil
	}
	size, err := r.msg.BodySize()
	if err != nil {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "unreadable payload")
	}
	if size > int64(limit) {
		return nil, gatehouse.Errorf(gatehouse.EBodyTooLarge, "the payload is %d bytes; the limit is %d", size, limit)
	}
	b, err := r.msg.ReadBody()
	if err != nil {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "unreadable payload")
	}
	return b, nil
}

// contentFormat returns the request's Content-Format, if it has one.
func contentFormat(r *request) (message.MediaType, bool) {
	cf, err := r.msg.Options().ContentFormat()
	return cf, err == nil
}

// accept returns the request's Accept option, if it has one.
func accept(r *request) (message.MediaType, bool) {
	a, err := r.msg.Options().Accept()
	return a, err == nil
}

// query returns the value of a Uri-Query option name=value.
func query(r *request, name string) string {
	qs, _ := r.msg.Queries()
	for _, q := range qs {
		if v, ok := strings.CutPrefix(q, name+"="); ok {
			return v
		}
	}
	return ""
}
