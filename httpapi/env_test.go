package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/secret"
	"github.com/gatehouse-iot/gatehouse/store/sqlite"
)

// The registry service is what production passes to New.
var _ Registry = (*registry.Service)(nil)

// env is one API server on a real HTTPS listener, over a real SQLite store,
// bootstrapped as a fresh installation: scope "default" and a global admin.
type env struct {
	t     *testing.T
	srv   *httptest.Server
	reg   *registry.Service
	admin string // the global admin token's secret
	logs  *syncBuffer
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mustOpenRegistry opens a fresh store and registry, with an installation
// CA (so every scope gets an issuing CA) and the bootstrap applied, returning the global admin token's secret.
func mustOpenRegistry(tb testing.TB) (*registry.Service, string) {
	tb.Helper()
	return mustOpenRegistryWith(tb, registry.ImportJobConfig{})
}

// mustOpenRegistryWith is mustOpenRegistry with import jobs configured as
// jobs says (running until the test ends).
func mustOpenRegistryWith(tb testing.TB, jobs registry.ImportJobConfig) (*registry.Service, string) {
	tb.Helper()
	st, err := sqlite.Open(filepath.Join(tb.TempDir(), "gh.db"))
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	ctx := context.Background()
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	kr, err := secret.NewKeyring(key)
	if err != nil {
		tb.Fatalf("keyring: %v", err)
	}
	root, err := ca.LoadOrCreateInstallationCA(ctx, st, kr, time.Now)
	if err != nil {
		tb.Fatalf("installation CA: %v", err)
	}
	if jobs.Dir == "" {
		jobs.Dir = filepath.Join(tb.TempDir(), "import-jobs")
	}
	reg := registry.New(st, registry.WithCA(root, kr), registry.WithImportJobs(jobs))
	if err := reg.EnsureScope(ctx, gatehouse.DefaultScope); err != nil {
		tb.Fatalf("ensure default scope: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); reg.RunImportJobs(runCtx) }()
	tb.Cleanup(func() { stop(); <-done })
	g, err := reg.CreateGlobalAdminToken(ctx, "admin")
	if err != nil {
		tb.Fatalf("create admin token: %v", err)
	}
	return reg, g.Secret
}

// newEnv boots the API. wrap, if not nil, wraps the registry (to inject faults).
func newEnv(t *testing.T, wrap func(Registry) Registry, opts ...Option) *env {
	t.Helper()
	return newEnvWith(t, registry.ImportJobConfig{}, wrap, opts...)
}

// newEnvWith is newEnv with import jobs configured as jobs says.
func newEnvWith(t *testing.T, jobs registry.ImportJobConfig, wrap func(Registry) Registry, opts ...Option) *env {
	t.Helper()
	reg, admin := mustOpenRegistryWith(t, jobs)
	logs := &syncBuffer{}
	var r Registry = reg
	if wrap != nil {
		r = wrap(reg)
	}
	opts = append([]Option{
		WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		WithPollInterval(50 * time.Millisecond),
	}, opts...)
	srv := httptest.NewUnstartedServer(New(r, opts...))
	// As a production server would have: they must not cut event streams.
	srv.Config.ReadTimeout = 2 * time.Second
	srv.Config.WriteTimeout = 2 * time.Second
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, reg: reg, admin: admin, logs: logs}
}

// resp is a response read in full.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request. body is sent as is if it is a string or []byte, as
// JSON otherwise; a body gets Content-Type application/json unless hdr
// (name, value pairs) says otherwise.
func (e *env) do(method, path, token string, body any, hdr ...string) *resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatalf("encode request body: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &resp{status: res.StatusCode, header: res.Header, body: b}
}

// decode decodes the body as JSON into v.
func (r *resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

// want fails the test unless the status is status.
func (r *resp) want(t *testing.T, status int) *resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}

// problem checks that r is a well-formed problem response with status and
// code, and returns it.
func (r *resp) problem(t *testing.T, status int, code string) Problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p Problem
	r.decode(t, &p)
	if p.Code != code {
		t.Errorf("code %q, want %q (detail %q)", p.Code, code, p.Detail)
	}
	if p.Status != status || p.Type != problemTypeBase+p.Code || p.Title == "" || p.Detail == "" || p.Instance == "" {
		t.Errorf("malformed problem %+v", p)
	}
	return p
}

// mustToken creates a token in scope with role and returns its secret.
func (e *env) mustToken(scope string, role gatehouse.Role) (secret, id string) {
	e.t.Helper()
	var g struct {
		Token string `json:"token"`
		ID    string `json:"id"`
	}
	e.do("POST", "/v1/scopes/"+scope+"/tokens", e.admin, map[string]any{"name": string(role) + " of " + scope, "role": role}).
		want(e.t, http.StatusCreated).decode(e.t, &g)
	return g.Token, g.ID
}

// mustDevice creates a device in scope default and returns it.
func (e *env) mustDevice(id string, tags map[string]string) *gatehouse.Device {
	e.t.Helper()
	var d gatehouse.Device
	e.do("POST", "/v1/scopes/default/devices", e.admin, map[string]any{"id": id, "tags": tags}).
		want(e.t, http.StatusCreated).decode(e.t, &d)
	return &d
}

// setState moves a device and returns the response.
func (e *env) setState(id string, to gatehouse.State, hdr ...string) *resp {
	e.t.Helper()
	return e.do("POST", "/v1/scopes/default/devices/"+id+"/state", e.admin, map[string]any{"state": to, "reason": "test"}, hdr...)
}
