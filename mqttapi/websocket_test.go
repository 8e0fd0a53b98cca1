package mqttapi_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pahopackets "github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/mqttapi"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

// wsConn is a WebSocket connection as the net.Conn paho wants.
type wsConn struct {
	*websocket.Conn
	r  io.Reader
	mu sync.Mutex // paho writes from more than one goroutine
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(p), c.WriteMessage(websocket.BinaryMessage, p)
}

func (c *wsConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// TestWebSocket provisions natively over MQTT on secure WebSocket.
func TestWebSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wsAddr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	srv, err := server.Start(context.Background(), server.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTWSAddr: wsAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	tok, _ := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
	admin, err := adminclient.New(srv.URL(), strings.TrimSpace(string(tok)), adminclient.WithCAFile(filepath.Join(dir, server.CAFile)))
	if err != nil {
		t.Fatal(err)
	}
	const token = "websocket-bootstrap-token-0123456789"
	if _, err := admin.CreateEnrollment(context.Background(), "default", registry.EnrollmentCreate{ID: "ws", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, Token: token, MaxUses: 5}}); err != nil {
		t.Fatal(err)
	}

	e := &env{t: t, pool: nil}
	caPEM, _ := os.ReadFile(filepath.Join(dir, server.CAFile))
	e.pool = x509Pool(caPEM)
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: e.pool}, Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	var ws *websocket.Conn
	deadline := time.Now().Add(5 * time.Second)
	for {
		ws, _, err = d.Dial("wss://"+wsAddr+"/mqtt", nil)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the listener starts in the background
	}
	if err != nil {
		t.Fatalf("dial wss: %v", err)
	}
	c := &client{got: map[string][]string{}, notify: make(chan struct{}, 10)}
	c.Client = paho.NewClient(paho.ClientConfig{Conn: pahopackets.NewThreadSafeConn(&wsConn{Conn: ws}), OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			c.mu.Lock()
			c.got[pr.Packet.Topic] = append(c.got[pr.Packet.Topic], string(pr.Packet.Payload))
			c.mu.Unlock()
			c.notify <- struct{}{}
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "ws-dev", CleanStart: true, KeepAlive: 30, Username: "default/ws-dev", UsernameFlag: true,
		Password: []byte(token), PasswordFlag: true}); err != nil {
		t.Fatalf("connect over wss: %v", err)
	}
	defer c.Disconnect(&paho.Disconnect{})
	c.subscribe(t, "gatehouse/provision/+/res")
	c.publish(t, "gatehouse/provision/1/req", "{}")
	msg := c.wait(t, "gatehouse/provision/1/res", 10*time.Second, func(string) bool { return true })
	var res mqttapi.NativeResponse
	if err := json.Unmarshal([]byte(msg), &res); err != nil || res.Status != "assigned" || res.DeviceID != "ws-dev" {
		t.Fatalf("answer over wss: %s", msg)
	}
}
