package mqttapi_test

import (
	"context"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse"
)

// TestTopicTemplates: a scope's topic templates decide what its devices may
// publish and subscribe to in the embedded broker (a paho client, over
// mTLS), the built-in config and reported topics stay, a policy change
// reaches sessions already connected, and the external broker hook
// answers the same.
func TestTopicTemplates(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	d := e.device("default", "t1", `{"mode":"eco"}`)
	e.device("default", "t2", "")
	custom := gatehouse.ScopePolicy{MQTT: &gatehouse.MQTTPolicy{TopicTemplates: []string{"fleet/{scope}/{deviceId}/+", "cmd/{deviceId}/#"}}}
	if _, err := e.admin.SetScopePolicy(ctx, "default", custom); err != nil {
		t.Fatal(err)
	}
	// A template that could give two devices one topic is refused.
	_, err := e.admin.SetScopePolicy(ctx, "default", gatehouse.ScopePolicy{MQTT: &gatehouse.MQTTPolicy{TopicTemplates: []string{"fleet/{deviceId}/#", "fleet/x/{deviceId}"}}})
	if gatehouse.ErrorCode(err) != gatehouse.EInvalid || !strings.Contains(err.Error(), "same topic") {
		t.Fatalf("overlapping templates: %v, want invalid", err)
	}

	c := e.mustDial(&d.tls, &paho.Connect{ClientID: "t1"})
	for _, tc := range []struct {
		topic string
		want  byte
	}{
		{"fleet/default/t1/temp", 0},
		{"cmd/t1/reboot/now", 0},
		{"devices/t1/reported", 0}, // built in, whatever the templates say
		{"devices/t1/telemetry", 0x87},
		{"devices/t1/config", 0x87}, // the registry's
		{"fleet/default/t2/temp", 0x87},
		{"fleet/default/t1/temp/x", 0x87},
		{"fleet/other/t1/temp", 0x87},
		{"cmd/t1", 0x87},
	} {
		if got := c.publish(t, tc.topic, "{}"); got != tc.want {
			t.Errorf("publish %q: 0x%02x, want 0x%02x", tc.topic, got, tc.want)
		}
	}
	for _, tc := range []struct {
		filter string
		want   byte
	}{
		{"fleet/default/t1/+", 1},
		{"cmd/t1/#", 1},
		{"devices/t1/config", 1},
		{"fleet/default/+/temp", 0x87},
		{"fleet/default/t1/#", 0x87},
		{"cmd/#", 0x87},
	} {
		if got := c.subscribe(t, tc.filter); got != tc.want {
			t.Errorf("subscribe %q: 0x%02x, want 0x%02x", tc.filter, got, tc.want)
		}
	}
	// Topics of a template carry messages (and the config still arrives).
	c.publish(t, "cmd/t1/led", "on")
	c.wait(t, "cmd/t1/led", 5*time.Second, func(m string) bool { return m == "on" })
	c.wait(t, "devices/t1/config", 5*time.Second, func(m string) bool { return strings.Contains(m, "eco") })

	// The external broker hook applies the same templates.
	hs := httptest.NewServer(e.srv.MQTTHookHandler())
	defer hs.Close()
	for _, tc := range []struct{ action, topic, want string }{
		{"publish", "fleet/default/t1/temp", "allow"},
		{"subscribe", "cmd/t1/#", "allow"},
		{"publish", "devices/t1/telemetry", "deny"},
		{"subscribe", "fleet/default/+/temp", "deny"},
	} {
		got := hookPost(t, hs.URL+"/hooks/emqx/authz", map[string]string{"clientid": "t1", "scope": "default", "action": tc.action, "topic": tc.topic})
		if got.Result != tc.want {
			t.Errorf("hook authz %s %q = %q, want %q", tc.action, tc.topic, got.Result, tc.want)
		}
	}
	certPEM, _ := os.ReadFile(d.certFile)
	authn := hookPost(t, hs.URL+"/hooks/emqx/authn", map[string]string{"clientid": "t1", "cert_pem": string(certPEM)})
	var acl []string
	for _, r := range authn.ACL {
		acl = append(acl, r.Permission+" "+r.Action+" "+r.Topic)
	}
	want := []string{"deny publish eq devices/t1/config", "allow subscribe eq devices/t1/config", "allow all eq devices/t1/reported",
		"allow all eq fleet/default/t1/+", "allow all fleet/default/t1/+", "allow all eq cmd/t1/#", "allow all cmd/t1/#", "deny all #"}
	if strings.Join(acl, "\n") != strings.Join(want, "\n") {
		t.Errorf("hook authn ACL:\n%s\nwant\n%s", strings.Join(acl, "\n"), strings.Join(want, "\n"))
	}

	// Back to the default: a session already connected follows. (A fresh
	// session, taking over from c: each refusal above counted against c.)
	watcher := e.mustDial(&d.tls, &paho.Connect{ClientID: "t1"})
	if got := watcher.publish(t, "devices/t1/telemetry", "{}"); got != 0x87 {
		t.Fatalf("before the change: 0x%02x, want 0x87", got)
	}
	if _, err := e.admin.SetScopePolicy(ctx, "default", gatehouse.ScopePolicy{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the default topic space applies to a connected session", func() bool {
		time.Sleep(200 * time.Millisecond) // each refusal counts against the session
		return watcher.publish(t, "devices/t1/telemetry", "{}") == 0
	})
	if got := watcher.publish(t, "fleet/default/t1/temp", "{}"); got != 0x87 {
		t.Errorf("after the change, publish to the removed template: 0x%02x, want 0x87", got)
	}
}
