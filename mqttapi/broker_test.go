package mqttapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse"
)

// TestDeviceSession drives one device over mTLS with paho (MQTT 5): its
// own topics, ACL denials, presence, activation, configuration, reported
// properties, and revocation kicking the live session.
func TestDeviceSession(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dc := e.device("default", "dev-1", `{"rate":5}`)
	e.device("default", "dev-2", "")
	if st := e.get("default", "dev-1").State; st != gatehouse.StateProvisioned {
		t.Fatalf("state before first connect %q, want provisioned", st)
	}

	c := e.mustDial(&dc.tls, &paho.Connect{ClientID: "dev-1"})
	took := eventually(t, time.Second, "connection online", func() bool {
		d := e.get("default", "dev-1")
		return d.Connection.Status == gatehouse.Online && d.Connection.LastSeen != nil
	})
	t.Logf("online after %v", took)
	if st := e.get("default", "dev-1").State; st != gatehouse.StateActive {
		t.Errorf("state after first connect %q, want active", st)
	}

	tests := []struct {
		name   string
		pub    bool
		topic  string
		reason byte
	}{
		{"publish own telemetry", true, "devices/dev-1/telemetry", 0},
		{"publish other device", true, "devices/dev-2/telemetry", 0x87},
		{"publish own config", true, "devices/dev-1/config", 0x87},
		{"publish outside devices", true, "fleet/all", 0x87},
		{"subscribe own commands", false, "devices/dev-1/commands/#", 1},
		{"subscribe other device", false, "devices/dev-2/#", 0x87},
		{"subscribe wildcard device level", false, "devices/+/telemetry", 0x87},
		{"subscribe everything", false, "#", 0x87},
		{"subscribe sys", false, "$SYS/#", 0x87},
	}
	for _, tc := range tests {
		var got byte
		if tc.pub {
			got = c.publish(t, tc.topic, "x")
		} else {
			got = c.subscribe(t, tc.topic)
		}
		if got != tc.reason {
			t.Errorf("%s: reason 0x%02x, want 0x%02x", tc.name, got, tc.reason)
		}
	}
	if v := e.srv.MQTTBroker().Stats().ACLViolations; v < 6 {
		t.Errorf("violations counted %d, want >= 6", v)
	}

	// Configuration: retained on subscribe, again after a change.
	if r := c.subscribe(t, "devices/dev-1/config"); r != 1 {
		t.Fatalf("subscribe config: 0x%02x", r)
	}
	c.wait(t, "devices/dev-1/config", 2*time.Second, func(m string) bool { return m == `{"rate":5}` })
	start := time.Now()
	if _, err := e.admin.PatchDevice(ctx, "default", "dev-1", json.RawMessage(`{"config":{"rate":7}}`), ""); err != nil {
		t.Fatal(err)
	}
	c.wait(t, "devices/dev-1/config", 2*time.Second, func(m string) bool { return strings.Contains(m, `"rate":7`) })
	t.Logf("config re-delivered %v after PATCH", time.Since(start))

	// Reported properties.
	if r := c.publish(t, "devices/dev-1/reported", `{"fw":"1.2.3"}`); r != 0 {
		t.Fatalf("report: 0x%02x", r)
	}
	if rep := string(e.get("default", "dev-1").Reported); !strings.Contains(rep, `"fw":"1.2.3"`) {
		t.Errorf("reported = %s", rep)
	}
	if r := c.publish(t, "devices/dev-1/reported", `not json`); r != 0x99 {
		t.Errorf("invalid report: 0x%02x, want 0x99", r)
	}

	limited := false
	for i := 0; i < 12 && !limited; i++ {
		limited = c.publish(t, "devices/dev-1/reported", `{"n":1}`) == 0x97
	}
	if !limited {
		t.Error("a flood of reports was not limited (PUBACK 0x97)")
	}

	// Revocation kicks the live session within a second.
	start = time.Now()
	if _, err := e.admin.RevokeCertificate(ctx, "default", dc.serial, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-c.gone:
		t.Logf("kicked %v after revocation (reason 0x%02x)", time.Since(start), d.ReasonCode)
		if d.ReasonCode != 0x87 {
			t.Errorf("disconnect reason 0x%02x, want 0x87", d.ReasonCode)
		}
	case <-time.After(time.Second):
		t.Fatal("session not closed within 1 s of revocation")
	}
	eventually(t, time.Second, "connection offline", func() bool { return e.get("default", "dev-1").Connection.Status == gatehouse.Offline })
	_, ack, err := e.dial(&dc.tls, &paho.Connect{ClientID: "dev-1"})
	if err == nil {
		t.Fatal("revoked certificate connected")
	}
	if code := connackCode(ack); code != 0x86 {
		t.Errorf("revoked certificate: CONNACK 0x%02x, want 0x86", code)
	}
}

// TestRefusals checks CONNACK reason codes.
func TestRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	inactive := e.device("default", "off-1", "")
	quarantined := e.device("default", "q-1", "")
	live := e.device("default", "on-1", "")
	if _, err := e.admin.SetState(ctx, "default", "off-1", gatehouse.StateInactive, "test", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.SetState(ctx, "default", "q-1", gatehouse.StateQuarantined, "test", ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cert *deviceCert
		cp   paho.Connect
		want byte
	}{
		{"inactive", inactive, paho.Connect{ClientID: "off-1"}, 0x87},
		{"quarantined", quarantined, paho.Connect{ClientID: "q-1"}, 0x8A},
		{"client ID not the device", live, paho.Connect{ClientID: "someone-else"}, 0x85},
		{"no credentials", nil, paho.Connect{ClientID: "on-1"}, 0x86},
		{"wrong SAS", nil, paho.Connect{ClientID: "on-1", Username: "default/on-1", UsernameFlag: true,
			Password: []byte("SharedAccessSignature sr=default%2Fdevices%2Fon-1&sig=AAAA&se=9999999999"), PasswordFlag: true}, 0x86},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cert = (*deviceCert)(nil)
			cert = tc.cert
			cp := tc.cp
			var err error
			var ack *paho.Connack
			if cert != nil {
				_, ack, err = e.dial(&cert.tls, &cp)
			} else {
				_, ack, err = e.dial(nil, &cp)
			}
			if err == nil {
				t.Fatal("connected")
			}
			if got := connackCode(ack); got != tc.want {
				t.Errorf("CONNACK 0x%02x, want 0x%02x (%v)", got, tc.want, err)
			}
		})
	}

	// A state change kicks a live session.
	c := e.mustDial(&live.tls, &paho.Connect{ClientID: "on-1"})
	start := time.Now()
	if _, err := e.admin.SetState(ctx, "default", "on-1", gatehouse.StateQuarantined, "test", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-c.gone:
		if d.ReasonCode != 0x8A {
			t.Errorf("disconnect reason 0x%02x, want 0x8A", d.ReasonCode)
		}
		t.Logf("quarantine kicked the session after %v", time.Since(start))
	case <-time.After(time.Second):
		t.Fatal("not kicked within 1 s of quarantine")
	}
}

// TestScopeIsolation: the same device ID in two scopes shares nothing.
func TestScopeIsolation(t *testing.T) {
	e := newEnv(t)
	if _, err := e.admin.CreateScope(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	a := e.device("default", "twin", `{"who":"default"}`)
	b := e.device("acme", "twin", `{"who":"acme"}`)
	ca := e.mustDial(&a.tls, &paho.Connect{ClientID: "twin"})
	cb := e.mustDial(&b.tls, &paho.Connect{ClientID: "twin"})
	ca.subscribe(t, "devices/twin/#")
	cb.subscribe(t, "devices/twin/config")
	ca.wait(t, "devices/twin/config", 2*time.Second, func(m string) bool { return m == `{"who":"default"}` })
	cb.wait(t, "devices/twin/config", 2*time.Second, func(m string) bool { return m == `{"who":"acme"}` })
	cb.publish(t, "devices/twin/telemetry", "from acme")
	time.Sleep(200 * time.Millisecond)
	if got := ca.messages("devices/twin/telemetry"); len(got) != 0 {
		t.Errorf("default's twin received acme's message: %q", got)
	}
	select {
	case <-ca.dead:
		t.Error("a session in another scope with the same client ID took this one over")
	default:
	}
}
