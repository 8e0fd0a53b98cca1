package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/server"
)

// node is a real Gatehouse server on a loopback port, and the environment
// that points the CLI at it through its data directory.
type node struct {
	t   *testing.T
	srv *server.Server
	dir string
	env map[string]string
}

func startNode(t *testing.T) *node {
	t.Helper()
	dir := t.TempDir()
	srv, err := server.Start(context.Background(), server.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return &node{t: t, srv: srv, dir: dir, env: map[string]string{envDataDir: dir}}
}

// result is what one command line did.
type result struct {
	stdout, stderr string
	code           int
}

// gh runs a command line against the node.
func (n *node) gh(args ...string) result {
	n.t.Helper()
	return ghEnv(n.t, n.env, args...)
}

// ghEnv runs a command line in process with env as its environment.
func ghEnv(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := runEnv(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr)
	return result{stdout.String(), stderr.String(), code}
}

// ok fails unless the command succeeded, and returns its stdout.
func (n *node) ok(args ...string) string {
	n.t.Helper()
	r := n.gh(args...)
	if r.code != 0 {
		n.t.Fatalf("gatehouse %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// okJSON runs a command with -o json and decodes its output into v.
func (n *node) okJSON(v any, args ...string) {
	n.t.Helper()
	out := n.ok(append(args, "-o", "json")...)
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		n.t.Fatalf("gatehouse %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
	if dec.More() {
		n.t.Fatalf("gatehouse %s -o json printed more than one document:\n%s", strings.Join(args, " "), out)
	}
}

// wantRows checks a table's lines against regular expressions, one per
// line, header included.
func wantRows(t *testing.T, what, out string, patterns ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != len(patterns) {
		t.Errorf("%s: %d lines, want %d:\n%s", what, len(lines), len(patterns), out)
		return
	}
	for i, p := range patterns {
		if !regexp.MustCompile(`^` + p + `$`).MatchString(lines[i]) {
			t.Errorf("%s: line %d = %q, want match for %q", what, i+1, lines[i], p)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
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

// adminToken returns the node's admin token.
func (n *node) adminToken() string {
	b, err := os.ReadFile(filepath.Join(n.dir, "admin-token"))
	if err != nil {
		n.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
