package mqttapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/gatehouse-iot/gatehouse/mqttapi"
)

func hookPost(t *testing.T, url string, body map[string]string) mqttapi.HookResponse {
	t.Helper()
	raw, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s: status %d, content type %q", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var out mqttapi.HookResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEMQXHook answers EMQX 5 HTTP authentication and authorisation
// requests for a device certificate, before and after revocation.
func TestEMQXHook(t *testing.T) {
	e := newEnv(t)
	dc := e.device("default", "ext-1", "")
	hs := httptest.NewServer(e.srv.MQTTHookHandler())
	defer hs.Close()
	certPEM, _ := os.ReadFile(dc.certFile)

	got := hookPost(t, hs.URL+"/hooks/emqx/authn", map[string]string{"clientid": "ext-1", "cert_pem": string(certPEM), "peerhost": "10.0.0.1"})
	if got.Result != "allow" || got.IsSuperuser || len(got.ACL) == 0 || got.ExpireAt != dc.tls.Leaf.NotAfter.Unix() || got.ClientAttrs["scope"] != "default" {
		t.Errorf("authn = %+v", got)
	}
	if got := hookPost(t, hs.URL+"/hooks/emqx/authn", map[string]string{"clientid": "other", "cert_pem": string(certPEM)}); got.Result != "deny" {
		t.Errorf("authn with another client ID = %+v", got)
	}
	if got := hookPost(t, hs.URL+"/hooks/emqx/authn", map[string]string{"clientid": "x"}); got.Result != "ignore" {
		t.Errorf("authn without credentials = %+v", got)
	}
	for _, tc := range []struct{ action, topic, want string }{
		{"publish", "devices/ext-1/telemetry", "allow"},
		{"subscribe", "devices/ext-1/config", "allow"},
		{"publish", "devices/ext-1/config", "deny"},
		{"subscribe", "devices/ext-2/#", "deny"},
		{"subscribe", "#", "deny"},
	} {
		got := hookPost(t, hs.URL+"/hooks/emqx/authz", map[string]string{"clientid": "ext-1", "username": "", "action": tc.action, "topic": tc.topic})
		if got.Result != tc.want {
			t.Errorf("authz %s %s = %q, want %q", tc.action, tc.topic, got.Result, tc.want)
		}
	}
	// A broker that verified the certificate itself sends only its CN:
	// trusted with the hook secret, refused without.
	if got := hookPost(t, hs.URL+"/hooks/emqx/authn", map[string]string{"clientid": "ext-1", "cert_common_name": "ext-1"}); got.Result != "ignore" {
		t.Errorf("authn by CN without a hook secret = %+v", got)
	}
	sh := httptest.NewServer(http.StripPrefix("/hooks/emqx", mqttapi.NewHookHandler(e.srv.Registry(), noProvisioning{}, mqttapi.WithHookSecret("s3cret"))))
	defer sh.Close()
	raw, _ := json.Marshal(map[string]string{"clientid": "ext-1", "cert_common_name": "ext-1"})
	for _, tc := range []struct {
		auth string
		want int
	}{{"", 401}, {"Bearer wrong", 401}, {"Bearer s3cret", 200}} {
		req, _ := http.NewRequest("POST", sh.URL+"/hooks/emqx/authn", bytes.NewReader(raw))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out mqttapi.HookResponse
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != tc.want || tc.want == 200 && out.Result != "allow" {
			t.Errorf("authn by CN with %q: %d %+v", tc.auth, resp.StatusCode, out)
		}
	}

	// mosquitto-go-auth (status response mode).
	for _, tc := range []struct {
		path string
		body map[string]any
		want int
	}{
		{"/hooks/emqx/mosquitto/user", map[string]any{"username": "default/ext-1", "password": "SharedAccessSignature sr=default%2Fdevices%2Fext-1&sig=AAAA&se=9999999999", "clientid": "ext-1"}, 403},
		{"/hooks/emqx/mosquitto/acl", map[string]any{"username": "default/ext-1", "clientid": "ext-1", "topic": "devices/ext-1/telemetry", "acc": 2}, 200},
		{"/hooks/emqx/mosquitto/acl", map[string]any{"username": "default/ext-1", "clientid": "ext-1", "topic": "devices/ext-1/config", "acc": 1}, 200},
		{"/hooks/emqx/mosquitto/acl", map[string]any{"username": "default/ext-1", "clientid": "ext-1", "topic": "devices/ext-1/config", "acc": 2}, 403},
		{"/hooks/emqx/mosquitto/acl", map[string]any{"username": "default/ext-1", "clientid": "ext-1", "topic": "devices/ext-2/x", "acc": 4}, 403},
		{"/hooks/emqx/mosquitto/superuser", map[string]any{"username": "default/ext-1"}, 403},
	} {
		raw, _ := json.Marshal(tc.body)
		resp, err := http.Post(hs.URL+tc.path, "application/json", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %v: status %d, want %d", tc.path, tc.body, resp.StatusCode, tc.want)
		}
	}

	if _, err := e.admin.RevokeCertificate(context.Background(), "default", dc.serial, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	if got := hookPost(t, hs.URL+"/hooks/emqx/authn", map[string]string{"clientid": "ext-1", "cert_pem": string(certPEM)}); got.Result != "deny" {
		t.Errorf("authn after revocation = %+v", got)
	}
}
