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
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/attest"
)

// Protocol is the dialect a device provisions over.
type Protocol string

const (
	Native Protocol = "native" // POST /device/v1/{scope}/register, renew
	DPS    Protocol = "dps"    // Azure DPS REST: PUT .../register, then poll the operation
	EST    Protocol = "est"    // RFC 7030 simpleenroll, simplereenroll
)

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
	Protocol       Protocol
	Credentials    Credentials
	Payload        json.RawMessage // native, DPS: passed to the enrollment's webhooks

	RootCAs *x509.CertPool // the server's CA (DATA/ca.pem); nil: the system's
	Store   Store          // default: MemoryStore
	Retry   Retry
	// DialContext opens connections; nil: net.Dialer. Set it to inject
	// faults (dropped connections, latency) or to route through a proxy.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// FreshConnections closes each connection after its request (separate
	// devices do not share connections).
	FreshConnections bool
	// OnRetry hears of each retry (logging, metrics).
	OnRetry func(err error, wait time.Duration)
	Now     func() time.Time
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
	if cfg.Protocol == "" {
		cfg.Protocol = Native
	}
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
	switch cfg.Protocol {
	case Native:
	case DPS:
		if c.BootstrapToken != "" {
			return nil, errors.New("deviceclient: the DPS dialect takes a symmetric key or an X.509 certificate, not a bootstrap token")
		}
	case EST:
		if c.SymmetricKey != nil || c.GroupKey != nil {
			return nil, errors.New("deviceclient: EST takes a bootstrap token or a factory certificate, not a symmetric key")
		}
	default:
		return nil, fmt.Errorf("deviceclient: unknown protocol %q (native, dps or est)", cfg.Protocol)
	}
	if cfg.Store == nil {
		cfg.Store = &MemoryStore{}
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
		dial = (&net.Dialer{Timeout: 15 * time.Second}).DialContext
	}
	tr := &http.Transport{
		TLSClientConfig:       tc,
		DialContext:           dial,
		DisableKeepAlives:     c.cfg.FreshConnections || cert != nil,
		TLSHandshakeTimeout:   15 * time.Second,
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
	err = c.cfg.Retry.do(ctx, c.cfg.OnRetry, func() error {
		var err error
		switch c.cfg.Protocol {
		case DPS:
			id, err = c.registerDPS(ctx, csrDER)
		case EST:
			id, err = c.enrollEST(ctx, csrDER, c.cfg.Credentials.FactoryCertificate, "simpleenroll")
		default:
			id, err = c.registerNative(ctx, csrDER)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := c.finish(id, key); err != nil {
		return nil, err
	}
	id.ProvisionedAt = c.now().UTC()
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
// certificate (native renew, or EST simplereenroll), and stores it. If the
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
	err = c.cfg.Retry.do(ctx, c.cfg.OnRetry, func() error {
		var err error
		if cur.Protocol == EST {
			next, err = c.enrollEST(ctx, csrDER, &curCert, "simplereenroll")
		} else {
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
	id.Scope, id.RegistrationID, id.Protocol = c.cfg.Scope, c.cfg.RegistrationID, c.cfg.Protocol
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
	key := c.cfg.Credentials.SymmetricKey
	if key == nil {
		key = attest.DeriveDeviceKey(c.cfg.Credentials.GroupKey, c.cfg.RegistrationID)
	}
	return attest.NewSAS(key, c.cfg.Scope+"/registrations/"+c.cfg.RegistrationID, c.now().Add(time.Hour))
}
