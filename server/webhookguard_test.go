package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

// TestWebhookDeny: with loopback closed to webhooks, neither an event
// webhook nor an enrollment's pre-provisioning webhook reaches a receiver
// on 127.0.0.1 (nor through the name localhost); the registration fails
// closed and the event webhook says why. With the default policy the same
// receiver is reached.
func TestWebhookDeny(t *testing.T) {
	var calls atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"allow":true}`))
	}))
	defer rcv.Close()
	// A query key must not reach lastError (nor logs).
	localhost := strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1) + "/hook?code=s3cret-query-key"

	for _, tt := range []struct {
		deny string
		open bool
	}{{"loopback", false}, {"", true}} {
		calls.Store(0)
		dir := t.TempDir()
		srv, err := server.Start(context.Background(), server.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", WebhookDeny: tt.deny,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		tok, _ := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
		p, _ := srv.Registry().Authenticate(ctx, strings.TrimSpace(string(tok)))
		hook, err := srv.Registry().CreateWebhook(ctx, p, "default", registry.WebhookCreate{URL: localhost, Events: []string{"device.*"}})
		if err != nil {
			t.Fatal(err)
		}
		e, err := srv.Registry().CreateEnrollment(ctx, p, "default", registry.EnrollmentCreate{ID: "g", Type: gatehouse.EnrollmentGroup,
			Attestation:  gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey},
			PreProvision: &gatehouse.Webhook{URL: rcv.URL, Secret: "0123456789abcdef0123"}})
		if err != nil {
			t.Fatal(err)
		}
		groupKey, _ := base64.StdEncoding.DecodeString(e.Attestation.PrimaryKey)
		m := hmac.New(sha256.New, groupKey)
		m.Write([]byte("dev-1"))
		body, _ := json.Marshal(map[string]string{"registrationId": "dev-1"})
		req, _ := http.NewRequest("POST", srv.URL()+"/device/v1/default/register", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", attest.NewSAS(m.Sum(nil), "default/registrations/dev-1", time.Now().Add(time.Hour)))
		caPEM, _ := os.ReadFile(filepath.Join(dir, server.CAFile))
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolOf(caPEM)}}}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if tt.open {
			if res.StatusCode != 200 {
				t.Errorf("default policy: register %d %s, want 200", res.StatusCode, answer)
			}
		} else if res.StatusCode == 200 || !strings.Contains(string(answer), string(gatehouse.EWebhookFailed)) {
			t.Errorf("loopback closed: register %d %s, want %s", res.StatusCode, answer, gatehouse.EWebhookFailed)
		}
		// A device change for the event webhook.
		if _, err := srv.Registry().CreateDevice(ctx, p, "default", registry.DeviceCreate{ID: "d-2"}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			w, err := srv.Registry().GetWebhook(ctx, p, "default", hook.ID)
			if err != nil {
				t.Fatal(err)
			}
			if tt.open && w.DeliveredSeq > 0 {
				break
			}
			if !tt.open && w.Failures > 0 {
				if !strings.Contains(w.LastError, "closed to webhooks") || strings.Contains(w.LastError, "s3cret") {
					t.Errorf("event webhook's lastError %q, want it to say the address is closed, without the URL's key", w.LastError)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("webhook %q: %+v", tt.deny, w)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := calls.Load(); (got > 0) != tt.open {
			t.Errorf("webhook policy %q: receiver called %d times", tt.deny, got)
		}
		srv.Close()
	}
}
