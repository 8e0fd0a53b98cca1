package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataDirDiscovery(t *testing.T) {
	n := startNode(t)
	token := n.adminToken()
	caFile := filepath.Join(n.dir, "ca.pem")
	empty := t.TempDir()
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"env data dir", map[string]string{envDataDir: n.dir}, nil},
		{"flag data dir", nil, []string{"--data-dir", n.dir}},
		{"flag wins over env", map[string]string{envDataDir: empty}, []string{"--data-dir", n.dir}},
		{"explicit flags", nil, []string{"--data-dir", empty, "--server", n.srv.URL(), "--token", token, "--ca-file", caFile}},
		{"explicit env", map[string]string{envDataDir: empty, envServer: n.srv.URL(), envToken: token, envCAFile: caFile}, nil},
		{"token flag wins over env", map[string]string{envDataDir: n.dir, envToken: "gh_bad"}, []string{"--token", token}},
		{"server from flag, the rest from the data dir", nil, []string{"--data-dir", n.dir, "--server", n.srv.URL()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ghEnv(t, tt.env, append([]string{"scope", "list"}, tt.args...)...)
			if r.code != 0 || !strings.Contains(r.stdout, "default") {
				t.Errorf("scope list: %+v", r)
			}
		})
	}

	t.Run("default data dir", func(t *testing.T) {
		cwd := t.TempDir()
		if err := os.Symlink(n.dir, filepath.Join(cwd, "gatehouse-data")); err != nil {
			t.Fatal(err)
		}
		t.Chdir(cwd)
		if r := ghEnv(t, nil, "scope", "list"); r.code != 0 || !strings.Contains(r.stdout, "default") {
			t.Errorf("scope list in a directory holding gatehouse-data: %+v", r)
		}
	})

	t.Run("env token is bad", func(t *testing.T) {
		r := ghEnv(t, map[string]string{envDataDir: n.dir, envToken: "gh_bad"}, "scope", "list")
		if r.code != 1 || !strings.Contains(r.stderr, "(unauthenticated)") {
			t.Errorf("scope list with a bad GATEHOUSE_TOKEN: %+v", r)
		}
	})
}

func TestConnectionErrors(t *testing.T) {
	n := startNode(t)
	empty := t.TempDir()

	// Nothing listens on port 1.
	r := ghEnv(t, nil, "scope", "list", "--data-dir", empty, "--server", "https://127.0.0.1:1", "--token", "gh_x")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the Gatehouse server at https://127.0.0.1:1") ||
		!strings.Contains(r.stderr, "--server") {
		t.Errorf("unreachable server: %+v", r)
	}

	// The server's certificate is not trusted without its CA.
	r = ghEnv(t, nil, "scope", "list", "--data-dir", empty, "--server", n.srv.URL(), "--token", n.adminToken())
	if r.code != 1 || !strings.Contains(r.stderr, n.srv.URL()) || !strings.Contains(r.stderr, "--ca-file") {
		t.Errorf("untrusted server: %+v", r)
	}

	// No token anywhere.
	r = ghEnv(t, nil, "scope", "list", "--data-dir", empty)
	if r.code != 1 || !strings.Contains(r.stderr, "no API token") || !strings.Contains(r.stderr, "--token") {
		t.Errorf("no token: %+v", r)
	}

	// Bad settings are usage errors.
	for _, args := range [][]string{
		{"--server", "ftp://example.com", "--token", "gh_x"},
		{"--server", "http://example.com", "--token", "gh_x"},
		{"--server", n.srv.URL(), "--token", "gh_x", "--ca-file", filepath.Join(empty, "missing.pem")},
	} {
		r := ghEnv(t, nil, append([]string{"scope", "list", "--data-dir", empty}, args...)...)
		if r.code != 2 {
			t.Errorf("scope list %s: %+v, want exit 2", strings.Join(args, " "), r)
		}
	}
}

// TestResolve checks where the connection settings come from, and that a
// local admin token never goes to another server.
func TestResolve(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "url"), []byte("https://localhost:9443\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "admin-token"), []byte("gh_local\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("pem"), 0o644)
	noURL := t.TempDir()
	os.WriteFile(filepath.Join(noURL, "admin-token"), []byte("gh_local"), 0o600)
	ca := filepath.Join(dir, "ca.pem")

	for _, tt := range []struct {
		name                  string
		env                   map[string]string
		args                  []string
		server, token, cafile string
		err                   string
	}{
		{"all from the data dir", nil, []string{"--data-dir", dir}, "https://localhost:9443", "gh_local", ca, ""},
		{"default URL", nil, []string{"--data-dir", noURL}, defaultServerURL, "gh_local", "", ""},
		{"same server as DATA/url", nil, []string{"--data-dir", dir, "--server", "https://localhost:9443"}, "https://localhost:9443", "gh_local", ca, ""},
		{"loopback server", nil, []string{"--data-dir", dir, "--server", "https://127.0.0.1:7000"}, "https://127.0.0.1:7000", "gh_local", ca, ""},
		{"remote server gets no local token", nil, []string{"--data-dir", dir, "--server", "https://gh.example.com"}, "", "", "", "no API token for https://gh.example.com"},
		{"remote server from env", map[string]string{envServer: "https://gh.example.com", envToken: "gh_remote"}, []string{"--data-dir", dir},
			"https://gh.example.com", "gh_remote", "", ""},
		{"flags win", map[string]string{envServer: "https://a.example.com", envToken: "gh_env", envCAFile: "env.pem"},
			[]string{"--server", "https://b.example.com", "--token", "gh_flag", "--ca-file", "flag.pem"}, "https://b.example.com", "gh_flag", "flag.pem", ""},
		{"env data dir", map[string]string{envDataDir: dir}, nil, "https://localhost:9443", "gh_local", ca, ""},
		{"no token", nil, []string{"--data-dir", t.TempDir()}, "", "", "", "no API token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := &app{getenv: func(k string) string { return tt.env[k] }}
			root := a.rootCommand()
			if err := root.PersistentFlags().Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c, err := a.resolve(true)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("resolve: %+v, %v; want error %q", c, err, tt.err)
				}
				return
			}
			if err != nil || c.server != tt.server || c.token != tt.token || c.caFile != tt.cafile {
				t.Errorf("resolve = %+v, %v; want server %q token %q ca %q", c, err, tt.server, tt.token, tt.cafile)
			}
		})
	}
}
