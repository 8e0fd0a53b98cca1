package mqttapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pahopackets "github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

// env is a real Gatehouse node with MQTT over TLS on a loopback port.
type env struct {
	t     testing.TB
	dir   string
	srv   *server.Server
	admin *adminclient.Client
	addr  string // MQTT over TLS
	pool  *x509.CertPool
	token string // the installation admin token
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	srv, err := server.Start(context.Background(), server.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		RateLimits: &server.RateLimits{PerSource: 10_000, SourceBurst: 10_000, PerID: 100, IDBurst: 100}})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	tok, err := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := adminclient.New(srv.URL(), strings.TrimSpace(string(tok)), adminclient.WithCAFile(filepath.Join(dir, server.CAFile)))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, server.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	if srv.MQTTAddr() == nil {
		t.Fatal("no MQTT listener")
	}
	return &env{t: t, dir: dir, srv: srv, admin: admin, addr: srv.MQTTAddr().String(), pool: pool, token: strings.TrimSpace(string(tok))}
}

func (e *env) caFile() string { return filepath.Join(e.dir, server.CAFile) }

// deviceCert is an issued device certificate and its key, in memory and
// as files for the mosquitto clients.
type deviceCert struct {
	tls      tls.Certificate
	serial   string
	certFile string // leaf + chain, PEM
	keyFile  string
}

func newCSR(t testing.TB, cn string) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func keyPair(t testing.TB, key *ecdsa.PrivateKey, certPEM string) (tls.Certificate, []byte) {
	t.Helper()
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	c, err := tls.X509KeyPair([]byte(certPEM), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c, keyPEM
}

// device creates a device in scope and issues it a certificate.
func (e *env) device(scope, id string, config string) *deviceCert {
	e.t.Helper()
	ctx := context.Background()
	req := registry.DeviceCreate{ID: id}
	if config != "" {
		req.Config = []byte(config)
	}
	if _, err := e.admin.CreateDevice(ctx, scope, req); err != nil {
		e.t.Fatalf("create device %s: %v", id, err)
	}
	key, csr := newCSR(e.t, id)
	iss, err := e.admin.IssueCertificate(ctx, scope, id, csr)
	if err != nil {
		e.t.Fatalf("issue certificate: %v", err)
	}
	full := iss.Certificate + iss.Chain
	c, keyPEM := keyPair(e.t, key, full)
	dir := e.t.TempDir()
	dc := &deviceCert{tls: c, serial: iss.Serial, certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	os.WriteFile(dc.certFile, []byte(full), 0o600)
	os.WriteFile(dc.keyFile, keyPEM, 0o600)
	return dc
}

// client is a paho MQTT 5 client that records what it receives.
type client struct {
	*paho.Client
	mu     sync.Mutex
	got    map[string][]string
	notify chan struct{}
	gone   chan *paho.Disconnect
	dead   chan struct{}
}

// dial connects over TLS (with cert, if any) and sends CONNECT.
func (e *env) dial(cert *tls.Certificate, cp *paho.Connect) (*client, *paho.Connack, error) {
	cfg := &tls.Config{RootCAs: e.pool, ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr, cfg)
	if err != nil {
		return nil, nil, err
	}
	c := &client{got: map[string][]string{}, notify: make(chan struct{}, 100), gone: make(chan *paho.Disconnect, 1), dead: make(chan struct{})}
	var once sync.Once
	c.Client = paho.NewClient(paho.ClientConfig{
		// paho's first PINGREQ comes from another goroutine and could land
		// inside a SUBSCRIBE written at the same moment (paho.golang #90).
		Conn: pahopackets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.mu.Lock()
			c.got[pr.Packet.Topic] = append(c.got[pr.Packet.Topic], string(pr.Packet.Payload))
			c.mu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case c.gone <- d:
			default:
			}
			once.Do(func() { close(c.dead) })
		},
		OnClientError: func(error) { once.Do(func() { close(c.dead) }) },
	})
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 30
	}
	cp.CleanStart = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ack, err
	}
	e.t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	return c, ack, nil
}

// mustDial connects or fails the test.
func (e *env) mustDial(cert *tls.Certificate, cp *paho.Connect) *client {
	e.t.Helper()
	c, ack, err := e.dial(cert, cp)
	if err != nil {
		e.t.Fatalf("connect %s: %v (connack %+v)", cp.ClientID, err, ack)
	}
	return c
}

// wait waits until a message on topic satisfies ok.
func (c *client) wait(t testing.TB, topic string, d time.Duration, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(d)
	for {
		c.mu.Lock()
		for _, m := range c.got[topic] {
			if ok(m) {
				c.mu.Unlock()
				return m
			}
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("no matching message on %q within %v; got %q", topic, d, c.got)
			return ""
		}
	}
}

// messages returns what arrived on a topic.
func (c *client) messages(topic string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got[topic]...)
}

func (c *client) subscribe(t testing.TB, topic string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
	if sa != nil && len(sa.Reasons) == 1 {
		return sa.Reasons[0]
	}
	t.Fatalf("subscribe %q: %v", topic, err)
	return 0
}

func (c *client) publish(t testing.TB, topic, payload string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	if r != nil {
		return r.ReasonCode
	}
	t.Fatalf("publish %q: %v", topic, err)
	return 0
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) get(scope, id string) *gatehouse.Device {
	e.t.Helper()
	d, err := e.admin.GetDevice(context.Background(), scope, id)
	if err != nil {
		e.t.Fatalf("get device: %v", err)
	}
	return d
}

func connackCode(ack *paho.Connack) byte {
	if ack != nil {
		return ack.ReasonCode
	}
	return 0
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func x509Pool(caPEM []byte) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return pool
}
