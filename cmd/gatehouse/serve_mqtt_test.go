package main

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
	"testing"
	"time"

	pahopackets "github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/mqttapi"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func TestServeMQTTLimitFlags(t *testing.T) {
	def := mqttapi.DefaultLimits()
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want func(l *mqttapi.Limits)
		err  string
	}{
		{"defaults", nil, nil, func(*mqttapi.Limits) {}, ""},
		{"flags", []string{"--mqtt-max-packet-size", "2048", "--mqtt-connects-per-second", "5.5", "--mqtt-connect-burst", "9",
			"--mqtt-connect-timeout", "3s", "--mqtt-violation-threshold", "4", "--mqtt-session-expiry", "10m",
			"--mqtt-max-inflight", "8", "--mqtt-queue", "16", "--mqtt-reports-per-second", "0.5", "--mqtt-report-burst", "2"}, nil,
			func(l *mqttapi.Limits) {
				*l = mqttapi.Limits{MaxPacketSize: 2048, ConnectsPerSecond: 5.5, ConnectBurst: 9, ConnectTimeout: 3 * time.Second,
					ViolationThreshold: 4, SessionExpiry: 600, MaxInflight: 8, WritesPending: 16, ReportsPerSecond: 0.5, ReportBurst: 2}
			}, ""},
		{"env", nil, map[string]string{"GATEHOUSE_MQTT_MAX_PACKET_SIZE": "4096", "GATEHOUSE_MQTT_CONNECT_BURST": "1"},
			func(l *mqttapi.Limits) { l.MaxPacketSize, l.ConnectBurst = 4096, 1 }, ""},
		{"flag wins over env", []string{"--mqtt-max-packet-size", "1024"}, map[string]string{"GATEHOUSE_MQTT_MAX_PACKET_SIZE": "4096"},
			func(l *mqttapi.Limits) { l.MaxPacketSize = 1024 }, ""},
		{"too small a packet", []string{"--mqtt-max-packet-size", "100"}, nil, nil, "at least 512 bytes"},
		{"not a number", []string{"--mqtt-max-inflight", "many"}, nil, nil, `--mqtt-max-inflight "many": not a valid value`},
		{"inflight over 16 bits", []string{"--mqtt-max-inflight", "70000"}, nil, nil, "--mqtt-max-inflight"},
		{"expiry under a second", []string{"--mqtt-session-expiry", "10ms"}, nil, nil, "between 1s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := serveFlags(t, tt.args...)
			s, err := serveConfig(cmd.Flags(), func(k string) string { return tt.env[k] })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("serveConfig: %v, want error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := def
			tt.want(&want)
			if s.MQTTLimits != want {
				t.Errorf("MQTTLimits =\n %+v\nwant\n %+v", s.MQTTLimits, want)
			}
		})
	}
}

// TestServeMQTTMaxPacketSize: --mqtt-max-packet-size reaches the broker of
// a running "gatehouse serve": a device's publish under it is accepted,
// one over it ends the session with DISCONNECT 0x95 (packet too large).
func TestServeMQTTMaxPacketSize(t *testing.T) {
	dir := t.TempDir()
	mqttAddr := freePort(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runEnv(ctx, []string{"serve", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--mqtt-addr", mqttAddr,
			"--coaps-addr", "off", "--mqtt-max-packet-size", "1024"}, func(string) string { return "" }, &syncBuffer{}, &stderr)
	}()
	var url string
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "url")); err == nil && strings.HasPrefix(string(b), "https://127.0.0.1:") {
			url = strings.TrimSpace(string(b))
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d:\n%s", code, stderr.String())
		case <-ctx.Done():
			t.Fatalf("serve did not write DATA/url:\n%s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	defer func() { cancel(); <-done }()

	tok, err := os.ReadFile(filepath.Join(dir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := adminclient.New(url, strings.TrimSpace(string(tok)), adminclient.WithCAFile(filepath.Join(dir, "ca.pem")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateDevice(ctx, "default", registry.DeviceCreate{ID: "d1"}); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "d1"}}, key)
	iss, err := admin.IssueCertificate(ctx, "default", "d1", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	cert, err := tls.X509KeyPair([]byte(iss.Certificate+iss.Chain), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)

	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", mqttAddr,
		&tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	gone := make(chan *paho.Disconnect, 1)
	c := paho.NewClient(paho.ClientConfig{Conn: pahopackets.NewThreadSafeConn(conn), OnServerDisconnect: func(d *paho.Disconnect) { gone <- d }})
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: "d1", KeepAlive: 30, CleanStart: true})
	if err != nil || ack.ReasonCode != 0 {
		t.Fatalf("connect: %v (%+v)", err, ack)
	}
	if ack.Properties == nil || ack.Properties.MaximumPacketSize == nil || *ack.Properties.MaximumPacketSize != 1024 {
		t.Errorf("CONNACK maximum packet size = %v, want 1024", ack.Properties)
	}
	pub := func(n int) (*paho.PublishResponse, error) {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		defer pcancel()
		return c.Publish(pctx, &paho.Publish{Topic: "devices/d1/telemetry", QoS: 1, Payload: make([]byte, n)})
	}
	if r, err := pub(900); err != nil || r.ReasonCode != 0 {
		t.Fatalf("publish of 900 bytes: %v, %+v; want accepted", err, r)
	}
	pub(2000)
	select {
	case d := <-gone:
		if d.ReasonCode != 0x95 {
			t.Errorf("DISCONNECT reason 0x%02x, want 0x95 packet too large", d.ReasonCode)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no DISCONNECT after a publish over --mqtt-max-packet-size")
	}
}

// freePort returns a loopback address nobody listens on (for a listener
// whose bound address the test cannot ask for).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
