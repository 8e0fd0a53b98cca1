package provision_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/provision"
)

// TestWebhookRedirectNotFollowed: an enrollment's webhook URL is checked
// (https, or http to loopback) when an operator sets it; a redirect in the
// answer must not take the signed request to another address (an internal
// one, over plain http), and the registration fails closed.
func TestWebhookRedirectNotFollowed(t *testing.T) {
	var reached atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"allow": true})
	}))
	defer internal.Close()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, internal.URL+"/latest/meta-data", http.StatusTemporaryRedirect)
	}))
	defer hook.Close()

	f := newFixture(t)
	b, _ := json.Marshal(map[string]any{"id": "g", "type": "group", "attestation": map[string]any{"type": "symmetric_key"},
		"preProvisionWebhook": map[string]any{"url": hook.URL, "secret": "hook-secret-0123456789"}})
	g := f.enroll(t, string(b))
	_, err := f.prov.Register(f.ctx, provision.Request{Scope: "default", RegistrationID: "r-1", SAS: sasFor(t, g.Attestation.PrimaryKey, "r-1", true)})
	if n := reached.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests, want 0", n)
	}
	wantCode(t, err, gatehouse.EWebhookFailed)
}
