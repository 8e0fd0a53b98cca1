package deviceclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/attest"
)

// Protocol is the dialect a device provisions over.
type Protocol string

const (
	Native     Protocol = "native"    // HTTPS: POST /device/v1/{scope}/register, renew
	DPS        Protocol = "dps"       // HTTPS, Azure DPS REST: PUT .../register, then poll the operation
	EST        Protocol = "est"       // HTTPS, RFC 7030 simpleenroll, simplereenroll
	DPSMQTT    Protocol = "dps-mqtt"  // MQTT 5 over TLS, the Azure DPS MQTT dialect ($dps/registrations/...)
	NativeMQTT Protocol = "mqtt"      // MQTT 5 over TLS, Gatehouse's gatehouse/provision/{rid}/req|res
	CoAP       Protocol = "coap"      // CoAP over DTLS 1.2: POST /prov
	ESTCoAP    Protocol = "est-coaps" // CoAP over DTLS 1.2, RFC 9148: /.well-known/est/sen, sren
)

// AllProtocols lists every protocol, in the order New accepts them.
var AllProtocols = []Protocol{Native, DPS, EST, DPSMQTT, NativeMQTT, CoAP, ESTCoAP}

// accepts reports whether p can carry creds, and if not, says why.
func (p Protocol) accepts(c Credentials) error {
	key := c.SymmetricKey != nil || c.GroupKey != nil
	switch p {
	case Native, NativeMQTT:
		return nil
	case DPS, DPSMQTT:
		if c.BootstrapToken != "" {
			return fmt.Errorf("deviceclient: %s takes a symmetric key or an X.509 certificate, not a bootstrap token", p)
		}
	case EST:
		if key {
			return fmt.Errorf("deviceclient: %s takes a bootstrap token or a factory certificate, not a symmetric key", p)
		}
	case CoAP, ESTCoAP:
		if c.BootstrapToken != "" {
			return fmt.Errorf("deviceclient: %s takes a symmetric key (the DTLS pre-shared key) or a factory certificate, not a bootstrap token", p)
		}
	default:
		return fmt.Errorf("deviceclient: unknown protocol %q (one of %v)", p, AllProtocols)
	}
	return nil
}

// Credentials are how a device proves who it is when it first registers.
// Set exactly one.
type Credentials struct {
	// SymmetricKey is the device's own key (an individual enrollment), raw
	// bytes.
	SymmetricKey []byte
	// GroupKey derives the device's key (HMAC-SHA256 of the registration
	// ID) for a symmetric-key group enrollment. Prefer provisioning the
	// derived key at the factory: a group key on a device is every
	// device's key.
	GroupKey []byte
	// BootstrapToken is a one-time or limited-use token (native: the
	// Bootstrap scheme; EST: HTTP Basic with the registration ID).
	BootstrapToken string
	// FactoryCertificate is a certificate (CN = registration ID) and key
	// installed at manufacture, chaining to an X.509 group's CA.
	FactoryCertificate *tls.Certificate
}

// Config configures a Client.
type Config struct {
	ServerURL      string // https://gatehouse.example.com:8443
	Scope          string // default "default"
	RegistrationID string
	EnrollmentID   string // optional: the group to try
	// Protocol is the one protocol to provision over (default Native).
	Protocol Protocol
	// Protocols, if set, is a fallback order: a transport failure (no
	// connection, a timeout, 5xx or unavailable) over one moves on to the
	// next at once; a refusal (wrong credentials, disabled enrollment, a
	// bad CSR) ends there; a 429 ends the round, and the next round, after
	// the backoff and the Retry-After, starts with the protocol that was
	// answered. Retry.Attempts counts rounds. Protocol, if also set, must
	// be Protocols[0].
	Protocols   []Protocol
	Credentials Credentials
	// MQTTAddr is host:port of the server's MQTT over TLS listener
	// (DPSMQTT, NativeMQTT); default: ServerURL's host, port 8883.
	MQTTAddr string
	// HubAddr is host:port of the broker Connect opens the device's
	// session on; default: the hub the registration assigned
	// (Identity.AssignedHub, port 8883 unless it names one), else MQTTAddr.
	HubAddr string
	// CoAPAddr is host:port of the server's CoAP over DTLS listener (CoAP,
	// ESTCoAP); default: ServerURL's host, port 5684.
	CoAPAddr string
	// ConnectTimeout bounds connecting over one protocol (TCP and TLS, or
	// the DTLS handshake); default 15 s. Over UDP a silent server is only
	// noticed by this timeout: keep it short where CoAP comes before
	// another protocol in the fallback order.
	ConnectTimeout time.Duration
	Payload        json.RawMessage // native, DPS: passed to the enrollment's webhooks

	RootCAs *x509.CertPool // the server's CA (DATA/ca.pem); nil: the system's
	// Store keeps the identity; default: a FileStore at
	// DefaultStorePath(Scope, RegistrationID).
	Store Store
	Retry Retry
	// DialContext opens connections; nil: net.Dialer. Set it to inject
	// faults (dropped connections, latency) or to route through a proxy.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// FreshConnections closes each connection after its request (separate
	// devices do not share connections).
	FreshConnections bool
	// OnRetry hears of each retry (logging, metrics).
	OnRetry func(err error, wait time.Duration)
	// OnFallback hears of each move to the next protocol.
	OnFallback func(from, to Protocol, err error)
	Now        func() time.Time
}

// Client provisions one device and keeps its identity.
type Client struct {
	cfg  Config
	base *url.URL
	now  func() time.Time
	hc   *http.Client // requests without a TLS client certificate
}

// New checks cfg and returns a client. It does no I/O.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.ServerURL, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("deviceclient: server URL %q is not of the form https://host[:port]", cfg.ServerURL)
	}
	if cfg.RegistrationID == "" {
		return nil, errors.New("deviceclient: a registration ID is required")
	}
	if cfg.Scope == "" {
		cfg.Scope = "default"
	}
	switch {
	case len(cfg.Protocols) == 0 && cfg.Protocol == "":
		cfg.Protocols = []Protocol{Native}
	case len(cfg.Protocols) == 0:
		cfg.Protocols = []Protocol{cfg.Protocol}
	case cfg.Protocol != "" && cfg.Protocol != cfg.Protocols[0]:
		return nil, fmt.Errorf("deviceclient: Protocol %q is not the first of Protocols %v; set one of them", cfg.Protocol, cfg.Protocols)
	}
	cfg.Protocols = slices.Clone(cfg.Protocols)
	cfg.Protocol = cfg.Protocols[0]
	c := cfg.Credentials
	n := 0
	for _, set := range []bool{c.SymmetricKey != nil, c.GroupKey != nil, c.BootstrapToken != "", c.FactoryCertificate != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("deviceclient: set exactly one of SymmetricKey, GroupKey, BootstrapToken, FactoryCertificate")
	}
	for i, p := range cfg.Protocols {
		if err := p.accepts(c); err != nil {
			return nil, err
		}
		if slices.Contains(cfg.Protocols[:i], p) {
			return nil, fmt.Errorf("deviceclient: protocol %q is listed twice", p)
		}
	}
	if cfg.MQTTAddr == "" {
		cfg.MQTTAddr = net.JoinHostPort(u.Hostname(), "8883")
	}
	if cfg.CoAPAddr == "" {
		cfg.CoAPAddr = net.JoinHostPort(u.Hostname(), "5684")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	if cfg.Store == nil {
		path, err := DefaultStorePath(cfg.Scope, cfg.RegistrationID)
		if err != nil {
			return nil, err
		}
		cfg.Store = FileStore{Path: path}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cl := &Client{cfg: cfg, base: u, now: cfg.Now}
	cl.hc = cl.newHTTPClient(nil)
	return cl, nil
}

// newHTTPClient returns a client whose connections present cert (none if
// nil). A connection that presented a certificate is never reused for a
// request that should present another, so those clients keep none.
func (c *Client) newHTTPClient(cert *tls.Certificate) *http.Client {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.cfg.RootCAs}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	dial := c.cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: c.cfg.ConnectTimeout}).DialContext
	}
	tr := &http.Transport{
		TLSClientConfig:       tc,
		DialContext:           dial,
		DisableKeepAlives:     c.cfg.FreshConnections || cert != nil,
		TLSHandshakeTimeout:   c.cfg.ConnectTimeout,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// httpClient is the client for a request presenting cert.
func (c *Client) httpClient(cert *tls.Certificate) *http.Client {
	if cert == nil {
		return c.hc
	}
	return c.newHTTPClient(cert)
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Provision returns the device's identity: the stored one while its
// certificate (if it has one) is valid and it is for this scope and
// registration ID, else a new registration, stored before it is returned.
func (c *Client) Provision(ctx context.Context) (*Identity, error) {
	id, err := c.cfg.Store.Load(ctx)
	switch {
	case err == nil && c.usable(id):
		return id, nil
	case err != nil && !errors.Is(err, ErrNoIdentity):
		return nil, err
	}
	return c.Register(ctx)
}

func (c *Client) usable(id *Identity) bool {
	if id.Scope != c.cfg.Scope || id.RegistrationID != c.cfg.RegistrationID || id.DeviceID == "" {
		return false
	}
	// An identity stored before Server was recorded is taken as this
	// server's.
	if id.Server != "" && id.Server != c.base.String() {
		return false
	}
	return id.CertificatePEM == "" || c.now().Before(id.NotAfter)
}

// Register registers the device now, whatever is stored, and stores the
// result. (Registering again is idempotent on the server: the same device
// comes back.)
func (c *Client) Register(ctx context.Context) (*Identity, error) {
	key, csrDER, err := newKeyAndCSR(c.cfg.RegistrationID)
	if err != nil {
		return nil, err
	}
	var id *Identity
	err = c.fallback(ctx, c.cfg.Protocols, func(p Protocol) error {
		var err error
		switch p {
		case DPS:
			id, err = c.registerDPS(ctx, csrDER)
		case EST:
			id, err = c.enrollEST(ctx, csrDER, c.cfg.Credentials.FactoryCertificate, "simpleenroll")
		case DPSMQTT:
			id, err = c.registerDPSMQTT(ctx, csrDER)
		case NativeMQTT:
			id, err = c.registerNativeMQTT(ctx, csrDER)
		case CoAP:
			id, err = c.registerCoAP(ctx, csrDER)
		case ESTCoAP:
			id, err = c.enrollESTCoAP(ctx, csrDER, c.cfg.Credentials.FactoryCertificate, "sen")
		default:
			id, err = c.registerNative(ctx, csrDER)
		}
		if err == nil {
			id.Protocol = p
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := c.finish(id, key); err != nil {
		return nil, err
	}
	id.Server, id.ProvisionedAt = c.base.String(), c.now().UTC()
	if err := c.cfg.Store.Save(ctx, id); err != nil {
		return nil, err
	}
	return id, nil
}

// RenewDue reports whether id's certificate has passed two thirds of its
// lifetime.
func (c *Client) RenewDue(id *Identity) bool {
	if id.CertificatePEM == "" || id.NotAfter.IsZero() {
		return false
	}
	life := id.NotAfter.Sub(id.NotBefore)
	return !c.now().Before(id.NotBefore.Add(life * 2 / 3))
}

// RenewIfDue renews the stored certificate when RenewDue says so, and
// returns the identity in force.
func (c *Client) RenewIfDue(ctx context.Context) (*Identity, error) {
	id, err := c.Provision(ctx)
	if err != nil || !c.RenewDue(id) {
		return id, err
	}
	return c.Renew(ctx)
}

// Renew gets a new certificate for a new key, authenticated by the current
// certificate, and stores it: over EST simplereenroll for a device
// provisioned over EST, EST-coaps sren for one provisioned over CoAP or
// EST-coaps, the native renew otherwise (the MQTT and DPS dialects have no
// renewal); the renewals of the other configured protocols are the
// fallbacks. If the
// server no longer knows the certificate (the device was reset or
// deleted), Renew registers the device again.
func (c *Client) Renew(ctx context.Context) (*Identity, error) {
	cur, err := c.cfg.Store.Load(ctx)
	if err != nil {
		return nil, err
	}
	if cur.CertificatePEM == "" {
		return nil, errors.New("deviceclient: the device has no certificate to renew")
	}
	curCert, err := tls.X509KeyPair([]byte(cur.CertificatePEM), []byte(cur.KeyPEM))
	if err != nil {
		return nil, fmt.Errorf("deviceclient: stored certificate: %w", err)
	}
	key, csrDER, err := newKeyAndCSR(c.cfg.RegistrationID)
	if err != nil {
		return nil, err
	}
	var next *Identity
	err = c.fallback(ctx, c.renewalOrder(cur.Protocol), func(p Protocol) error {
		var err error
		switch p {
		case EST:
			next, err = c.enrollEST(ctx, csrDER, &curCert, "simplereenroll")
		case ESTCoAP:
			next, err = c.enrollESTCoAP(ctx, csrDER, &curCert, "sren")
		default:
			next, err = c.renewNative(ctx, csrDER, &curCert)
		}
		return err
	})
	var e *Error
	if errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden) {
		return c.Register(ctx) // the identity was reset, revoked or deleted
	}
	if err != nil {
		return nil, err
	}
	id := *cur
	id.CertificatePEM, id.ChainPEM = next.CertificatePEM, next.ChainPEM
	if id.ChainPEM == "" {
		id.ChainPEM = cur.ChainPEM
	}
	if err := c.finish(&id, key); err != nil {
		return nil, err
	}
	id.RenewedAt = c.now().UTC()
	if err := c.cfg.Store.Save(ctx, &id); err != nil {
		return nil, err
	}
	return &id, nil
}

// TLSCertificate is the device's operational certificate and key, for its
// TLS connections (MQTT, HTTPS).
func (id *Identity) TLSCertificate() (tls.Certificate, error) {
	if id.CertificatePEM == "" {
		return tls.Certificate{}, errors.New("deviceclient: the identity holds no certificate")
	}
	return tls.X509KeyPair([]byte(id.CertificatePEM+id.ChainPEM), []byte(id.KeyPEM))
}

// finish puts the key into id and reads the certificate's validity.
func (c *Client) finish(id *Identity, key *ecdsa.PrivateKey) error {
	id.Scope, id.RegistrationID = c.cfg.Scope, c.cfg.RegistrationID
	if id.Protocol == "" {
		id.Protocol = c.cfg.Protocol
	}
	if id.CertificatePEM == "" {
		return nil
	}
	block, _ := pem.Decode([]byte(id.CertificatePEM))
	if block == nil {
		return &Error{Status: 200, Code: "bad_certificate", Message: "the server sent no PEM certificate"}
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return &Error{Status: 200, Code: "bad_certificate", Message: err.Error()}
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return &Error{Status: 200, Code: "bad_certificate", Message: "the certificate is not for the key the device sent"}
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	id.KeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	id.NotBefore, id.NotAfter = cert.NotBefore.UTC(), cert.NotAfter.UTC()
	if id.DeviceID == "" {
		id.DeviceID = deviceIDFromCert(cert, c.cfg.Scope)
	}
	return nil
}

// deviceIDFromCert reads urn:gatehouse:{scope}:{device} (EST answers
// carry only the certificate).
func deviceIDFromCert(cert *x509.Certificate, scope string) string {
	for _, u := range cert.URIs {
		if rest, ok := strings.CutPrefix(u.String(), "urn:gatehouse:"+scope+":"); ok {
			return rest
		}
	}
	return cert.Subject.CommonName
}

// newKeyAndCSR makes the device's P-256 key and a CSR for it.
func newKeyAndCSR(cn string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, nil, err
	}
	return key, der, nil
}

// sas is the SAS token of the device's symmetric key, valid an hour.
func (c *Client) sas() string {
	return attest.NewSAS(c.deviceKey(), c.cfg.Scope+"/registrations/"+c.cfg.RegistrationID, c.now().Add(time.Hour))
}

// deviceKey is the device's symmetric key: its own, or derived from the
// group key.
func (c *Client) deviceKey() []byte {
	if key := c.cfg.Credentials.SymmetricKey; key != nil {
		return key
	}
	return attest.DeriveDeviceKey(c.cfg.Credentials.GroupKey, c.cfg.RegistrationID)
}

// renewalOrder is the renewals to try for an identity provisioned over p:
// p's own first, then those of the other configured protocols. A renewal
// is named by the protocol it runs over: Native (POST .../renew), EST
// (simplereenroll) or ESTCoAP (sren).
func (c *Client) renewalOrder(p Protocol) []Protocol {
	via := func(p Protocol) Protocol {
		switch p {
		case EST:
			return EST
		case CoAP, ESTCoAP:
			return ESTCoAP
		}
		return Native
	}
	out := []Protocol{via(p)}
	for _, q := range c.cfg.Protocols {
		if r := via(q); !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}
