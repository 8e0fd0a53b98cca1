package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// startInternal starts a node for tests of the pieces server.go wires in.
func startInternal(t *testing.T) (*Server, *gatehouse.Principal) {
	t.Helper()
	dir := t.TempDir()
	s, err := Start(context.Background(), Config{DataDir: dir, HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tok, err := os.ReadFile(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.registry.Authenticate(context.Background(), strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

func TestMetricsHandler(t *testing.T) {
	s, admin := startInternal(t)
	ctx := context.Background()
	for _, id := range []string{"m1", "m2"} {
		if _, err := s.registry.CreateDevice(ctx, admin, "default", registry.DeviceCreate{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	h := s.metricsHandler()
	mtok, err := os.ReadFile(filepath.Join(s.cfg.DataDir, MetricsTokenFile))
	if err != nil {
		t.Fatalf("metrics token not written at start: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(s.cfg.DataDir, MetricsTokenFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("metrics token mode %v, want 0600", fi.Mode().Perm())
	}
	scoped, err := s.registry.CreateToken(ctx, admin, "default", registry.TokenRequest{Name: "v", Role: gatehouse.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		status      int
	}{
		{"none", "", 401},
		{"wrong", "nope", 401},
		{"scoped admin", scoped.Secret, 401},
		{"metrics token", strings.TrimSpace(string(mtok)), 200},
		{"installation admin", strings.TrimSpace(string(mustRead(t, filepath.Join(s.cfg.DataDir, AdminTokenFile)))), 200},
	} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, rec.Code, tc.status)
		}
		if tc.status != 200 {
			continue
		}
		body := rec.Body.String()
		for _, want := range []string{
			`gatehouse_devices{scope="default",state="provisioned"} 2`,
			`gatehouse_devices_connection{scope="default",status="offline"} 2`,
			`gatehouse_fleet_scrape_error 0`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: metrics lack %q", tc.name, want)
			}
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStartWebhooks: the node's worker delivers a scope's events.
func TestStartWebhooks(t *testing.T) {
	s, admin := startInternal(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var seqs []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		seqs = append(seqs, r.Header.Get(registry.HeaderEventSeq))
		mu.Unlock()
	}))
	defer rcv.Close()
	if _, err := s.registry.CreateWebhook(ctx, admin, "default", registry.WebhookCreate{URL: rcv.URL, Events: []string{"device.created"}}); err != nil {
		t.Fatal(err)
	}
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		s.registry.RunWebhooks(ctx, registry.WebhookConfig{Node: nodeName()})
	}()
	defer func() { cancel(); <-delivered }()
	if _, err := s.registry.CreateDevice(ctx, admin, "default", registry.DeviceCreate{ID: "w1"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(seqs)
		mu.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no delivery within 10s")
}
