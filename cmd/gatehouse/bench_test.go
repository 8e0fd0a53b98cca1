package main

import (
	"encoding/json"
	"testing"
)

// TestBenchProvision runs a small benchmark against an in-process server
// and against a running one (--server), in both connection modes.
func TestBenchProvision(t *testing.T) {
	n := startNode(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"in-process fresh TLS", []string{"bench", "provision", "--devices", "24", "--fresh-tls", "-c", "4", "--floor-count", "8", "-o", "json"}},
		{"in-process keep-alive no CSR", []string{"bench", "provision", "--devices", "24", "--no-csr", "-c", "4", "--floor-count", "8", "-o", "json"}},
		{"remote", []string{"bench", "provision", "--server", n.srv.URL(), "--devices", "16", "--fresh-tls", "-c", "4", "--floor-count", "8", "-o", "json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := n.ok(tc.args...)
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			for _, k := range []string{"rate", "p50_ms", "p99_ms", "errors", "floor", "ratio"} {
				v, ok := got[k].(float64)
				if !ok {
					t.Errorf("%s: got %v, want a number", k, got[k])
					continue
				}
				if k != "errors" && v <= 0 {
					t.Errorf("%s: got %v, want > 0", k, v)
				}
			}
			if got["errors"] != 0.0 {
				t.Errorf("errors: got %v (%v), want 0", got["errors"], got["error_codes"])
			}
		})
	}
}

func TestBenchProvisionUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "provision", "--devices", "0"},
		{"bench", "provision", "--concurrency", "0"},
	} {
		if r := ghEnv(t, map[string]string{}, args...); r.code != 2 {
			t.Errorf("%v: got status %d, want 2 (%s)", args, r.code, r.stderr)
		}
	}
}
