package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse/server"
)

// serveFlags returns serve's flags, as parsed from args.
func serveFlags(t *testing.T, args ...string) *cobra.Command {
	t.Helper()
	a := &app{getenv: func(string) string { return "" }}
	root := a.rootCommand()
	cmd, rest, err := root.Find([]string{"serve"})
	if err != nil || len(rest) != 0 {
		t.Fatal(err)
	}
	cmd.InheritedFlags() // merges --data-dir into cmd.Flags()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestServeConfig(t *testing.T) {
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	type want struct {
		dataDir, addr, database string
		hosts                   []string
		logFormat, masterKey    string
	}
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want want
		err  string
	}{
		{"defaults", nil, nil,
			want{"./gatehouse-data", ":8443", "sqlite://" + abs("gatehouse-data/gatehouse.db"), nil, "json", ""}, ""},
		{"flags", []string{"--data-dir", "/var/lib/gh", "--http-addr", "127.0.0.1:9000", "--database", "postgres://gh:pw@db/gh",
			"--public-host", "gh.example.com", "--public-host", "10.0.0.5,gh2.example.com", "--log-format", "text", "--master-key-file", "/run/secrets/key"}, nil,
			want{"/var/lib/gh", "127.0.0.1:9000", "postgres://gh:pw@db/gh", []string{"gh.example.com", "10.0.0.5", "gh2.example.com"}, "text", "/run/secrets/key"}, ""},
		{"env", nil, map[string]string{envDataDir: "/srv/gh", envHTTPAddr: ":443", envDatabase: "sqlite:///tmp/x.db",
			envPublicHost: " a.example.com, ,b.example.com ", envLogFormat: "text", envMasterKeyFile: "/k"},
			want{"/srv/gh", ":443", "sqlite:///tmp/x.db", []string{"a.example.com", "b.example.com"}, "text", "/k"}, ""},
		{"flags win over env", []string{"--data-dir", "/flag", "--http-addr", ":1", "--public-host", "flag.example.com", "--log-format", "json"},
			map[string]string{envDataDir: "/env", envHTTPAddr: ":2", envPublicHost: "env.example.com", envLogFormat: "text"},
			want{"/flag", ":1", "sqlite:///flag/gatehouse.db", []string{"flag.example.com"}, "json", ""}, ""},
		{"database follows the data dir", nil, map[string]string{envDataDir: "/data"},
			want{"/data", ":8443", "sqlite:///data/gatehouse.db", nil, "json", ""}, ""},
		{"bad log format", []string{"--log-format", "xml"}, nil, want{}, "--log-format must be json or text"},
		{"bad database", nil, map[string]string{envDatabase: "mysql://u:secret@h/db"}, want{}, "mysql://u:xxxxx@h/db"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := serveFlags(t, tt.args...)
			s, err := serveConfig(cmd.Flags(), func(k string) string { return tt.env[k] })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "secret") {
					t.Errorf("serveConfig: %v, want error containing %q (and no password)", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{s.DataDir, s.HTTPAddr, s.Database, s.PublicHosts, s.logFormat, s.MasterKeyFile}
			if got.dataDir != tt.want.dataDir || got.addr != tt.want.addr || got.database != tt.want.database ||
				!slices.Equal(got.hosts, tt.want.hosts) || got.logFormat != tt.want.logFormat || got.masterKey != tt.want.masterKey {
				t.Errorf("serveConfig =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestServeAssignedHub(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
		err  string
	}{
		{nil, nil, "", ""},
		{[]string{"--assigned-hub", "hub.example.com:8884"}, nil, "hub.example.com:8884", ""},
		{nil, map[string]string{envAssignedHub: "env.example.com"}, "env.example.com", ""},
		{[]string{"--assigned-hub", "flag.example.com"}, map[string]string{envAssignedHub: "env.example.com"}, "flag.example.com", ""},
		{[]string{"--assigned-hub", "mqtts://hub.example.com"}, nil, "", "the port must be a number"},
	} {
		s, err := serveConfig(serveFlags(t, tt.args...).Flags(), func(k string) string { return tt.env[k] })
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: %v, want an error containing %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || s.AssignedHub != tt.want {
			t.Errorf("%q %v: hub %q, %v; want %q", tt.args, tt.env, s.AssignedHub, err, tt.want)
		}
	}
}

func TestServeWebhookDeny(t *testing.T) {
	s, err := serveConfig(serveFlags(t).Flags(), func(string) string { return "" })
	if err != nil || s.WebhookDeny != "link-local" {
		t.Errorf("default: %q, %v; want link-local", s.WebhookDeny, err)
	}
	s, err = serveConfig(serveFlags(t).Flags(), func(k string) string { return map[string]string{envWebhookDeny: "private,loopback"}[k] })
	if err != nil || s.WebhookDeny != "private,loopback" {
		t.Errorf("env: %q, %v", s.WebhookDeny, err)
	}
	if _, err := serveConfig(serveFlags(t, "--webhook-deny", "intranet").Flags(), func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "--webhook-deny") {
		t.Errorf("--webhook-deny intranet: %v, want a usage error", err)
	}
}

// TestServe runs "gatehouse serve" in process, administers it with the CLI
// through its data directory, and stops it as SIGTERM would.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runEnv(ctx, []string{"serve", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--coaps-addr", "127.0.0.1:0", "--log-format", "text"},
			func(string) string { return "" }, &syncBuffer{}, &stderr)
	}()
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "url")); err == nil && strings.HasPrefix(string(b), "https://127.0.0.1:") {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d:\n%s", code, stderr.String())
		case <-ctx.Done():
			t.Fatalf("serve did not write DATA/url:\n%s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	r := ghEnv(t, map[string]string{envDataDir: dir}, "scope", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "default") {
		t.Errorf("scope list against serve: %+v", r)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exited %d after cancelling, want 0:\n%s", code, stderr.String())
	}
	if logs := stderr.String(); !strings.Contains(logs, "level=INFO") || !strings.Contains(logs, "gatehouse serving") {
		t.Errorf("serve logs (text) = %q", logs)
	}

	// A serve that cannot start logs why and exits 1.
	var logs syncBuffer
	code := runEnv(t.Context(), []string{"serve", "--data-dir", t.TempDir(), "--http-addr", "256.0.0.1:0"},
		func(string) string { return "" }, &syncBuffer{}, &logs)
	if code != 1 || !strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), "256.0.0.1") {
		t.Errorf("serve on a bad address: exit %d, logs %s", code, logs.String())
	}
	if r := ghEnv(t, nil, "serve", "--log-format", "xml"); r.code != 2 {
		t.Errorf("serve --log-format xml: %+v, want exit 2", r)
	}
}

func TestServeImportJobConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want server.ImportJobLimits
		err  string
	}{
		{"defaults", nil, nil, server.ImportJobLimits{MaxConcurrent: 2, MaxUpload: 1 << 30, TTL: 7 * 24 * time.Hour, Lease: 2 * time.Minute}, ""},
		{"flags", []string{"--import-max-jobs", "4", "--import-max-upload", "64MiB", "--import-job-ttl", "36h", "--import-job-lease", "5m"}, nil,
			server.ImportJobLimits{MaxConcurrent: 4, MaxUpload: 64 << 20, TTL: 36 * time.Hour, Lease: 5 * time.Minute}, ""},
		{"env", nil, map[string]string{envImportMaxJobs: "1", envImportMaxUpload: "1000", envImportJobTTL: "1d", envImportJobLease: "90s"},
			server.ImportJobLimits{MaxConcurrent: 1, MaxUpload: 1000, TTL: 24 * time.Hour, Lease: 90 * time.Second}, ""},
		{"bad jobs", []string{"--import-max-jobs", "0"}, nil, server.ImportJobLimits{}, "--import-max-jobs"},
		{"bad size", []string{"--import-max-upload", "1TB"}, nil, server.ImportJobLimits{}, "--import-max-upload"},
		{"bad ttl", []string{"--import-job-ttl", "1s"}, nil, server.ImportJobLimits{}, "--import-job-ttl"},
		{"bad lease", []string{"--import-job-lease", "10s"}, nil, server.ImportJobLimits{}, "--import-job-lease"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := serveConfig(serveFlags(t, tt.args...).Flags(), func(k string) string { return tt.env[k] })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("serveConfig: %v, want error containing %q", err, tt.err)
				}
				return
			}
			if err != nil || s.ImportJobs != tt.want {
				t.Errorf("serveConfig: %+v (err %v), want %+v", s.ImportJobs, err, tt.want)
			}
		})
	}
}
