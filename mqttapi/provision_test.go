package mqttapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
	"github.com/gatehouse-iot/gatehouse/mqttapi"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// The DPS test vector of ../shared/PROTOCOLS.md.
const (
	vectorGroupKey = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
	vectorRegID    = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
	vectorDevKey   = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
)

// waitPrefix waits for a message on a topic starting with prefix and
// returns the topic and payload.
func (c *client) waitPrefix(t *testing.T, prefix string, d time.Duration) (string, string) {
	t.Helper()
	deadline := time.After(d)
	for {
		c.mu.Lock()
		for topic, ms := range c.got {
			if strings.HasPrefix(topic, prefix) && len(ms) > 0 {
				c.mu.Unlock()
				return topic, ms[0]
			}
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-deadline:
			t.Fatalf("no message on %s* within %v; got %q", prefix, d, c.got)
		}
	}
}

// TestDPSProvisioning provisions over the DPS MQTT dialect with a key
// derived from a group key (the public test vector), polls the operation,
// then connects as the device with a SAS token and with the issued
// certificate.
func TestDPSProvisioning(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.admin.CreateEnrollment(ctx, "default", registry.EnrollmentCreate{ID: "dps-group", Type: gatehouse.EnrollmentGroup,
		Attestation:   gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey, PrimaryKey: vectorGroupKey},
		InitialConfig: json.RawMessage(`{"interval":60}`)}); err != nil {
		t.Fatal(err)
	}
	devKey, _ := base64.StdEncoding.DecodeString(vectorDevKey)
	sas := attest.NewSAS(devKey, "default/registrations/"+vectorRegID, time.Now().Add(time.Hour))

	// A wrong key is refused at CONNECT.
	bad := attest.NewSAS([]byte("not the key at all"), "default/registrations/"+vectorRegID, time.Now().Add(time.Hour))
	if _, ack, err := e.dial(nil, &paho.Connect{ClientID: vectorRegID, Username: "default/registrations/" + vectorRegID + "/api-version=2019-03-31",
		UsernameFlag: true, Password: []byte(bad), PasswordFlag: true}); err == nil || connackCode(ack) != 0x86 {
		t.Fatalf("wrong key: err %v, CONNACK 0x%02x, want 0x86", err, connackCode(ack))
	}

	c := e.mustDial(nil, &paho.Connect{ClientID: vectorRegID,
		Username:     "default/registrations/" + vectorRegID + "/api-version=2019-03-31&ClientVersion=gatehouse-test",
		UsernameFlag: true, Password: []byte(sas), PasswordFlag: true})
	if r := c.subscribe(t, "$dps/registrations/res/#"); r != 1 {
		t.Fatalf("subscribe responses: 0x%02x", r)
	}
	for _, bad := range []string{
		"devices/" + vectorRegID + "/telemetry",
		"$dps/registrations/PUT/iotdps-register/?$rid=a%2Fb",
		"$dps/registrations/PUT/iotdps-register/?$rid=1&$rid=2",
		"$dps/registrations/PUT/iotdps-register/?rid=1",
	} {
		if r := c.publish(t, bad, "{}"); r != 0x87 {
			t.Errorf("publish %q: 0x%02x, want 0x87", bad, r)
		}
	}
	if r := c.subscribe(t, "devices/#"); r != 0x87 {
		t.Errorf("DPS session subscribing devices/#: 0x%02x", r)
	}

	key, csr := newCSR(t, vectorRegID)
	body, _ := json.Marshal(map[string]any{"registrationId": vectorRegID, "csr": string(csr), "payload": map[string]any{"model": "x1"}})
	if r := c.publish(t, "$dps/registrations/PUT/iotdps-register/?$rid=1", string(body)); r != 0 {
		t.Fatalf("register publish: 0x%02x", r)
	}
	// The registration is done before the answer: it is the final state.
	topic, msg := c.waitPrefix(t, "$dps/registrations/res/", 10*time.Second)
	if topic != "$dps/registrations/res/200/?$rid=1" {
		t.Fatalf("register answer on %q: %s", topic, msg)
	}
	var op struct {
		OperationID       string `json:"operationId"`
		Status            string `json:"status"`
		RegistrationState struct {
			DeviceID               string   `json:"deviceId"`
			IssuedCertificateChain []string `json:"issuedCertificateChain"`
		} `json:"registrationState"`
	}
	if err := json.Unmarshal([]byte(msg), &op); err != nil || op.OperationID == "" || op.Status != "assigned" ||
		op.RegistrationState.DeviceID != vectorRegID || len(op.RegistrationState.IssuedCertificateChain) < 2 {
		t.Fatalf("register answer %s (%v)", msg, err)
	}
	c.publish(t, "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId="+op.OperationID, "")
	msg = c.wait(t, "$dps/registrations/res/200/?$rid=2", 10*time.Second, func(string) bool { return true })
	var st struct {
		Status            string `json:"status"`
		RegistrationState struct {
			DeviceID               string   `json:"deviceId"`
			Status                 string   `json:"status"`
			IssuedCertificateChain []string `json:"issuedCertificateChain"`
		} `json:"registrationState"`
	}
	if err := json.Unmarshal([]byte(msg), &st); err != nil || st.Status != "assigned" || st.RegistrationState.DeviceID != vectorRegID ||
		len(st.RegistrationState.IssuedCertificateChain) < 2 {
		t.Fatalf("poll answer %s (%v)", msg, err)
	}

	// The device connects with a SAS token for {scope}/devices/{id}.
	devSAS := attest.NewSAS(devKey, "default/devices/"+vectorRegID, time.Now().Add(time.Hour))
	d := e.mustDial(nil, &paho.Connect{ClientID: vectorRegID, Username: "default/" + vectorRegID, UsernameFlag: true,
		Password: []byte(devSAS), PasswordFlag: true})
	d.subscribe(t, "devices/"+vectorRegID+"/config")
	d.wait(t, "devices/"+vectorRegID+"/config", 2*time.Second, func(m string) bool { return m == `{"interval":60}` })
	eventually(t, time.Second, "SAS device online", func() bool {
		dev := e.get("default", vectorRegID)
		return dev.Connection.Status == gatehouse.Online && dev.State == gatehouse.StateActive
	})

	// Revoking the device's key alone closes the session that used it
	// within a second and refuses the key from then on; the certificate
	// still connects.
	creds, err := e.admin.DeviceCredentials(context.Background(), "default", vectorRegID)
	if err != nil {
		t.Fatal(err)
	}
	keyID := ""
	for _, c := range creds {
		if c.Kind == gatehouse.CredentialSymmetricKey {
			keyID = c.ID
		}
	}
	if keyID == "" {
		t.Fatalf("no symmetric-key credential among %d", len(creds))
	}
	start := time.Now()
	if _, err := e.admin.RevokeCredential(context.Background(), "default", vectorRegID, keyID, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	select {
	case dis := <-d.gone:
		t.Logf("SAS session closed %v after its key was revoked (reason 0x%02x)", time.Since(start), dis.ReasonCode)
		if dis.ReasonCode != 0x87 {
			t.Errorf("disconnect reason 0x%02x, want 0x87", dis.ReasonCode)
		}
	case <-time.After(time.Second):
		t.Fatal("SAS session not closed within 1 s of its key's revocation")
	}
	devSAS = attest.NewSAS(devKey, "default/devices/"+vectorRegID, time.Now().Add(time.Hour))
	_, ack, err := e.dial(nil, &paho.Connect{ClientID: vectorRegID, Username: "default/" + vectorRegID, UsernameFlag: true,
		Password: []byte(devSAS), PasswordFlag: true})
	if err == nil {
		t.Fatal("a revoked key connected")
	}
	if code := connackCode(ack); code != 0x86 {
		t.Errorf("revoked key: CONNACK 0x%02x, want 0x86", code)
	}
	// And with the issued certificate (IoT Hub style username accepted).
	var pemChain string
	for _, b64 := range st.RegistrationState.IssuedCertificateChain {
		der, _ := base64.StdEncoding.DecodeString(b64)
		pemChain += string(pemCert(der))
	}
	cert, _ := keyPair(t, key, pemChain)
	x := e.mustDial(&cert, &paho.Connect{ClientID: vectorRegID})
	if r := x.publish(t, "devices/"+vectorRegID+"/telemetry", "via cert"); r != 0 {
		t.Errorf("publish with the issued certificate: 0x%02x", r)
	}

}

// TestNativeProvisioning provisions with a bootstrap token and a CSR over
// the native dialect, then reconnects with the issued certificate.
func TestNativeProvisioning(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const token = "bootstrap-token-for-tests-0123456789"
	if _, err := e.admin.CreateEnrollment(ctx, "default", registry.EnrollmentCreate{ID: "boot", Type: gatehouse.EnrollmentGroup,
		Attestation:   gatehouse.Attestation{Type: gatehouse.AttestToken, Token: token, MaxUses: 10},
		Credentials:   gatehouse.CredentialPolicy{Certificate: gatehouse.CertRequired},
		InitialConfig: json.RawMessage(`{"led":"on"}`)}); err != nil {
		t.Fatal(err)
	}
	const regID = "sensor-42"
	if _, ack, err := e.dial(nil, &paho.Connect{ClientID: regID, Username: "default/" + regID, UsernameFlag: true,
		Password: []byte("wrong-token-wrong-token"), PasswordFlag: true}); err == nil || connackCode(ack) != 0x86 {
		t.Fatalf("wrong token: %v, CONNACK 0x%02x", err, connackCode(ack))
	}
	c := e.mustDial(nil, &paho.Connect{ClientID: regID, Username: "default/" + regID, UsernameFlag: true,
		Password: []byte(token), PasswordFlag: true})
	if r := c.subscribe(t, "gatehouse/provision/+/res"); r != 1 {
		t.Fatalf("subscribe: 0x%02x", r)
	}
	if r := c.publish(t, "gatehouse/provision/a.b/req", "{}"); r != 0x87 {
		t.Errorf("request ID with a dot: 0x%02x, want 0x87", r)
	}
	key, csr := newCSR(t, regID)
	body, _ := json.Marshal(mqttapi.NativeRequest{CSR: string(csr)})
	if r := c.publish(t, "gatehouse/provision/r1/req", string(body)); r != 0 {
		t.Fatalf("request: 0x%02x", r)
	}
	msg := c.wait(t, "gatehouse/provision/r1/res", 10*time.Second, func(string) bool { return true })
	var res mqttapi.NativeResponse
	if err := json.Unmarshal([]byte(msg), &res); err != nil || res.Status != "assigned" || res.DeviceID != regID || res.Certificate == "" {
		t.Fatalf("answer %s (%v)", msg, err)
	}
	if string(res.Config) != `{"led":"on"}` {
		t.Errorf("config in the answer %s", res.Config)
	}

	// A bad request gets a failed answer, not silence.
	c.publish(t, "gatehouse/provision/r2/req", `{"csr":"garbage"}`)
	msg = c.wait(t, "gatehouse/provision/r2/res", 10*time.Second, func(string) bool { return true })
	if !strings.Contains(msg, `"status":"failed"`) {
		t.Errorf("bad CSR answer %s", msg)
	}

	cert, _ := keyPair(t, key, res.Certificate+res.Chain)
	d := e.mustDial(&cert, &paho.Connect{ClientID: regID})
	d.subscribe(t, "devices/"+regID+"/config")
	d.wait(t, "devices/"+regID+"/config", 2*time.Second, func(m string) bool { return m == `{"led":"on"}` })
	eventually(t, time.Second, "provisioned device online and active", func() bool {
		dev := e.get("default", regID)
		return dev.Connection.Status == gatehouse.Online && dev.State == gatehouse.StateActive
	})
}
