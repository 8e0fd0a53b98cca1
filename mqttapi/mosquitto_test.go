package mqttapi_test

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// mosquittoArgs are the TLS connection arguments of Debian's mosquitto
// clients for a device certificate.
func (e *env) mosquittoArgs(dc *deviceCert, id, version string) []string {
	host, port, _ := net.SplitHostPort(e.addr)
	return []string{"--cafile", e.caFile(), "--cert", dc.certFile, "--key", dc.keyFile,
		"-h", host, "-p", port, "-i", id, "-V", version}
}

func needMosquitto(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (apt-get install mosquitto-clients): the MQTT tests drive the real clients", tool)
		}
	}
}

// TestMosquittoClients drives the real mosquitto clients over TLS with a
// device certificate, in MQTT 3.1.1 and 5.
func TestMosquittoClients(t *testing.T) {
	needMosquitto(t)
	e := newEnv(t)
	ctx := context.Background()
	dc := e.device("default", "mq-1", `{"mode":"eco"}`)
	e.device("default", "mq-2", "")

	for _, v := range []string{"mqttv311", "mqttv5"} {
		args := append(e.mosquittoArgs(dc, "mq-1", v), "-t", "devices/mq-1/telemetry", "-m", "hello", "-q", "1")
		out, err := exec.CommandContext(ctx, "mosquitto_pub", args...).CombinedOutput()
		if err != nil || bytes.Contains(bytes.ToLower(out), []byte("error")) {
			t.Errorf("%s publish to own topic: %v: %s", v, err, out)
		}
	}

	// Reported properties over 3.1.1; an invalid report closes the
	// session (3.1.1 has no reason codes).
	args := append(e.mosquittoArgs(dc, "mq-1", "mqttv311"), "-t", "devices/mq-1/reported", "-m", `{"fw":"2.0"}`, "-q", "1")
	if out, err := exec.CommandContext(ctx, "mosquitto_pub", args...).CombinedOutput(); err != nil {
		t.Errorf("report over 3.1.1: %v: %s", err, out)
	}
	if rep := string(e.get("default", "mq-1").Reported); !strings.Contains(rep, `"fw":"2.0"`) {
		t.Errorf("reported = %s", rep)
	}
	args = append(e.mosquittoArgs(dc, "mq-1", "mqttv311"), "-t", "devices/mq-1/reported", "-m", "not json", "-q", "1")
	if out, err := exec.CommandContext(ctx, "mosquitto_pub", args...).CombinedOutput(); err == nil && !strings.Contains(strings.ToLower(string(out)), "error") {
		t.Errorf("invalid report over 3.1.1 accepted: %s", out)
	}

	// Retained configuration, delivered on subscribe.
	args = append(e.mosquittoArgs(dc, "mq-1", "mqttv311"), "-t", "devices/mq-1/config", "-C", "1", "-W", "5")
	out, err := exec.CommandContext(ctx, "mosquitto_sub", args...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != `{"mode":"eco"}` {
		t.Errorf("config over 3.1.1: %v: %q", err, out)
	}

	// Another device's topics: MQTT 5 says "not authorized", 3.1.1 gets
	// SUBACK 0x80 and nothing arrives.
	for _, v := range []string{"mqttv5", "mqttv311"} {
		args := append(e.mosquittoArgs(dc, "mq-1", v), "-t", "devices/mq-2/#", "-C", "1", "-W", "2")
		out, _ := exec.CommandContext(ctx, "mosquitto_sub", args...).CombinedOutput()
		lower := strings.ToLower(string(out))
		if !strings.Contains(lower, "denied") && !strings.Contains(lower, "not authori") && strings.TrimSpace(lower) != "" && !strings.Contains(lower, "timed out") {
			t.Errorf("%s subscribe to another device: %q", v, out)
		}
	}

	// A live 3.1.1 session, presence, then revocation ends it.
	args = append(e.mosquittoArgs(dc, "mq-1", "mqttv311"), "-t", "devices/mq-1/config", "-W", "20")
	sub := exec.Command("mosquitto_sub", args...)
	subOut := &lockedBuffer{}
	sub.Stdout, sub.Stderr = subOut, subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sub.Wait() }()
	t.Cleanup(func() { sub.Process.Kill() })
	// The earlier clients used the same ID: wait for this one's own
	// configuration message, then for presence.
	eventually(t, 5*time.Second, "configuration delivered to mosquitto_sub", func() bool {
		return strings.Contains(subOut.String(), `{"mode":"eco"}`)
	})
	eventually(t, 2*time.Second, "mosquitto session online", func() bool {
		return e.get("default", "mq-1").Connection.Status == gatehouse.Online
	})
	start := time.Now()
	if _, err := e.admin.RevokeCertificate(ctx, "default", dc.serial, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	// 3.1.1 has no DISCONNECT from the server: the connection closes (the
	// client then retries after its 1 s delay and is refused).
	took := eventually(t, time.Second, "3.1.1 session closed after revocation", func() bool {
		return e.srv.MQTTBroker().Stats().Sessions == 0
	})
	t.Logf("3.1.1 session closed %v after revocation", took)
	select {
	case <-exited:
		t.Logf("mosquitto_sub (3.1.1) ended %v after revocation: %q", time.Since(start), subOut.String())
	case <-time.After(2 * time.Second):
		t.Fatalf("mosquitto_sub still running 2 s after revocation: %q", subOut.String())
	}
	eventually(t, time.Second, "offline after revocation", func() bool {
		return e.get("default", "mq-1").Connection.Status == gatehouse.Offline
	})
	args = append(e.mosquittoArgs(dc, "mq-1", "mqttv5"), "-t", "devices/mq-1/telemetry", "-m", "again", "-q", "1")
	if out, err := exec.CommandContext(ctx, "mosquitto_pub", args...).CombinedOutput(); err == nil {
		t.Errorf("revoked certificate still publishes: %s", out)
	}
}

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
