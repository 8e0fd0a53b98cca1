package mqttapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestMosquittoACLBindsClientID: mosquitto-go-auth authenticated a client
// by its username (a SAS device's {scope}/{deviceId}, or, with
// use_identity_as_username, its certificate's CN, which reaches no user
// check). The client ID is the client's own choice: the ACL check must not
// let it name another device than the username.
func TestMosquittoACLBindsClientID(t *testing.T) {
	e := newEnv(t)
	e.device("default", "ext-1", "")
	e.device("default", "ext-2", `{"wifi":"secret"}`)
	hs := httptest.NewServer(e.srv.MQTTHookHandler())
	defer hs.Close()
	for _, tc := range []struct {
		body map[string]any
		want int
	}{
		// The certificate of ext-1, with ext-2's client ID.
		{map[string]any{"username": "ext-1", "clientid": "ext-2", "topic": "devices/ext-2/config", "acc": 1}, 403},
		{map[string]any{"username": "ext-1", "clientid": "ext-2", "topic": "devices/ext-2/reported", "acc": 2}, 403},
		{map[string]any{"username": "default/ext-1", "clientid": "ext-2", "topic": "devices/ext-2/config", "acc": 4}, 403},
		{map[string]any{"username": "ext-1", "topic": "devices/ext-1/config", "acc": 1}, 403},
		// Each device its own topics.
		{map[string]any{"username": "ext-1", "clientid": "ext-1", "topic": "devices/ext-1/config", "acc": 1}, 200},
		{map[string]any{"username": "default/ext-2", "clientid": "ext-2", "topic": "devices/ext-2/config", "acc": 4}, 200},
	} {
		raw, _ := json.Marshal(tc.body)
		resp, err := http.Post(hs.URL+"/hooks/emqx/mosquitto/acl", "application/json", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("acl %v: status %d, want %d", tc.body, resp.StatusCode, tc.want)
		}
	}
}
