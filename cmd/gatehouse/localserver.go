package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

// localServer is a throwaway node that "bench provision", "bench query" and
// "sim" start in their own process when no --server is given: a temporary
// data directory, no rate limits (the load generator is the only client),
// and, when asked for, one enrollment for the simulated devices.
type localServer struct {
	srv        *server.Server
	roots      *x509.CertPool // trusts the node's HTTPS certificate
	token      string         // the installation admin token
	admin      *gatehouse.Principal
	enrollment *gatehouse.Enrollment // nil unless an enrollment was asked for
	close      func()                // stops the node and removes its data directory
}

// startLocalServer starts the node, makes sure scope exists and, if req is
// not nil, creates the enrollment req in it. Each of with may change the
// server's configuration (extra listeners).
func startLocalServer(ctx context.Context, prefix, scope string, req *registry.EnrollmentCreate, with ...func(*server.Config)) (_ *localServer, err error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	const unlimited = 1e9
	cfg := server.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		RateLimits: &server.RateLimits{PerSource: unlimited, SourceBurst: 1 << 30, PerID: unlimited, IDBurst: 1 << 30}}
	for _, w := range with {
		w(&cfg)
	}
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	defer func() {
		if err != nil {
			srv.Close()
		}
	}()
	tok, err := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
	if err != nil {
		return nil, err
	}
	p, err := srv.Registry().Authenticate(ctx, strings.TrimSpace(string(tok)))
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	if scope != gatehouse.DefaultScope {
		if err := srv.Registry().EnsureScope(ctx, scope); err != nil {
			return nil, err
		}
	}
	var e *gatehouse.Enrollment
	if req != nil {
		if e, err = srv.Registry().CreateEnrollment(ctx, p, scope, *req); err != nil {
			return nil, fmt.Errorf("create enrollment: %w", err)
		}
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, server.CAFile))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return &localServer{srv: srv, roots: roots, token: strings.TrimSpace(string(tok)), admin: p, enrollment: e, close: func() { srv.Close(); os.RemoveAll(dir) }}, nil
}
