package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/server"
)

// node is a real Gatehouse node on a loopback port, with a client that
// trusts its installation CA.
type node struct {
	t      *testing.T
	dir    string
	srv    *server.Server
	client *http.Client
	url    string
	admin  string
	logBuf *bytes.Buffer
}

func startNode(t *testing.T, dir string) *node {
	t.Helper()
	var logs bytes.Buffer
	srv, err := server.Start(context.Background(), server.Config{
		DataDir:  dir,
		HTTPAddr: "127.0.0.1:0",
		Logger:   slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return attach(t, dir, srv, &logs)
}

// attach builds a client for a started node.
func attach(t *testing.T, dir string, srv *server.Server, logs *bytes.Buffer) *node {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(dir, server.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	tok, err := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return &node{t: t, dir: dir, srv: srv, url: srv.URL(), admin: strings.TrimSpace(string(tok)), logBuf: logs,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

// do sends a request and returns the status and decoded JSON body.
func (n *node) do(token, method, path, body string, hdr ...string) (int, map[string]any, http.Header) {
	n.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.url+path, r)
	if err != nil {
		n.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := n.client.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		json.Unmarshal(raw, &m)
	}
	return resp.StatusCode, m, resp.Header
}

func (n *node) must(token, method, path, body string, want int, hdr ...string) map[string]any {
	n.t.Helper()
	code, m, _ := n.do(token, method, path, body, hdr...)
	if code != want {
		n.t.Fatalf("%s %s: got %d %v, want %d", method, path, code, m, want)
	}
	return m
}

func TestFirstStartFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dir)
	for name, want := range map[string]fs.FileMode{server.AdminTokenFile: 0o600, server.MasterKeyFile: 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s mode = %o, want %o", name, got, want)
		}
	}
	url, _ := os.ReadFile(filepath.Join(dir, server.URLFile))
	if got := strings.TrimSpace(string(url)); got != n.url {
		t.Errorf("url file = %q, want %q", got, n.url)
	}
	n.must("", "GET", "/healthz", "", 200)
	n.must("", "GET", "/readyz", "", 200)
	if m := n.must("", "GET", "/v1/openapi.json", "", 200); !strings.HasPrefix(m["openapi"].(string), "3") {
		t.Errorf("openapi = %v", m["openapi"])
	}
	if m := n.must(n.admin, "GET", "/v1/scopes/default", "", 200); m["id"] != "default" {
		t.Errorf("default scope = %v", m)
	}
}

func TestTLSRefusesOldVersions(t *testing.T) {
	n := startNode(t, t.TempDir())
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, MinVersion: v, MaxVersion: v}}}
		if resp, err := c.Get(n.url + "/healthz"); err == nil {
			resp.Body.Close()
			t.Errorf("TLS version %x accepted", v)
		}
	}
}

// TestRestartPersistence writes through one node, stops it, starts another on
// the same data directory and reads everything back.
func TestRestartPersistence(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	n.must(n.admin, "POST", "/v1/scopes/default/devices", `{"id":"p-1","tags":{"site":"north"},"config":{"rate":5}}`, 201)
	n.must(n.admin, "POST", "/v1/scopes/default/devices/p-1/state", `{"state":"active","reason":"test"}`, 200)
	n.must(n.admin, "POST", "/v1/scopes", `{"id":"acme"}`, 201)
	grant := n.must(n.admin, "POST", "/v1/scopes/acme/tokens", `{"name":"ops","role":"operator"}`, 201)
	scoped := grant["token"].(string)
	adminBefore := n.admin
	if err := n.srv.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	n2 := startNode(t, dir)
	if n2.admin != adminBefore {
		t.Error("admin token changed across restart")
	}
	d := n2.must(n2.admin, "GET", "/v1/scopes/default/devices/p-1", "", 200)
	if d["state"] != "active" || d["tags"].(map[string]any)["site"] != "north" {
		t.Errorf("after restart: %v", d)
	}
	n2.must(scoped, "POST", "/v1/scopes/acme/devices", `{"id":"a-1"}`, 201)
	ev := n2.must(n2.admin, "GET", "/v1/scopes/default/events?after=0", "", 200)
	items := ev["items"].([]any)
	for i, it := range items {
		if seq := it.(map[string]any)["seq"].(float64); int(seq) != i+1 {
			t.Fatalf("event %d has seq %v: want gap-free from 1", i, seq)
		}
	}
	if len(items) < 3 {
		t.Errorf("got %d events, want scope.created, device.created, device.state_changed", len(items))
	}

	// Secrets at rest: no token appears in plaintext in any file except
	// admin-token itself.
	filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() == server.AdminTokenFile {
			return err
		}
		raw, _ := os.ReadFile(path)
		for _, tok := range []string{n2.admin, scoped} {
			if bytes.Contains(raw, []byte(tok)) {
				t.Errorf("%s contains a token in plaintext", path)
			}
		}
		return nil
	})
	for _, tok := range []string{n2.admin, scoped} {
		if strings.Contains(n.logBuf.String()+n2.logBuf.String(), tok) {
			t.Error("a token appears in the log")
		}
	}
}

// TestURLFileNamesARunningServer: DATA/url exists only while a server that
// it names is up: a stale one is removed at start (also when the start
// fails), the server's own at Close.
func TestURLFileNamesARunningServer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, server.URLFile)
	if err := os.WriteFile(path, []byte("https://127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := server.Config{DataDir: dir, HTTPAddr: busy.Addr().String(), Logger: slog.New(slog.DiscardHandler)}
	if srv, err := server.Start(context.Background(), cfg); err == nil {
		srv.Close()
		t.Fatal("Start on a busy port succeeded")
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after a failed start, the previous run's %s: %v; want it removed", server.URLFile, err)
	}
	cfg.HTTPAddr = "127.0.0.1:0"
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != srv.URL()+"\n" {
		t.Errorf("while serving: %s holds %q (%v), want %q", server.URLFile, b, err, srv.URL())
	}
	srv.Close()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Close, %s: %v; want it removed", server.URLFile, err)
	}
}

// TestDataDirLocked: a second node on a running node's data directory is
// refused with a clear error, and leaves the first one's DATA/url alone;
// once the first stops, the directory is free again.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	cfg := server.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}
	first, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	second, err := server.Start(context.Background(), cfg)
	if err == nil {
		second.Close()
		first.Close()
		t.Fatal("a second node started on a data directory in use")
	}
	if !strings.Contains(err.Error(), "in use by process") {
		t.Errorf("second node: %v; want it to say the directory is in use, and by which process", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, server.URLFile)); err != nil || string(b) != first.URL()+"\n" {
		t.Errorf("the running node's %s after the refused start: %q (%v)", server.URLFile, b, err)
	}
	first.Close()
	again, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start after the first node stopped: %v", err)
	}
	again.Close()
}
