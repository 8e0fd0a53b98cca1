package main

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
)

// TestSim runs a fleet against an in-process server with dropped
// connections: every device must still provision, connect and report,
// through retries.
func TestSim(t *testing.T) {
	args := []string{"sim", "--devices", "200", "--drop-rate", "0.1", "-c", "32", "--seed", "7"}
	t.Run("json", func(t *testing.T) {
		r := ghEnv(t, map[string]string{}, append(args, "-o", "json")...)
		if r.code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		var got simResult
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
		}
		if got.Succeeded != 200 || got.Failed != 0 {
			t.Errorf("got %d succeeded, %d failed (%v), want 200 and 0", got.Succeeded, got.Failed, got.Failures)
		}
		if got.Registered != 200 || got.Duplicates != 0 {
			t.Errorf("registry: got %d devices, %d duplicates; want 200 and 0", got.Registered, got.Duplicates)
		}
		if got.Reported != 200 || got.ReportedInRegistry != 200 {
			t.Errorf("reports: %d devices reported, the registry holds %d; want 200 and 200", got.Reported, got.ReportedInRegistry)
		}
		if got.Retries == 0 || got.Dropped == 0 {
			t.Errorf("got %d retries, %d dropped connections; want both > 0", got.Retries, got.Dropped)
		}
		if got.P50 <= 0 || got.P99 < got.P50 {
			t.Errorf("latency: got p50 %v, p99 %v", got.P50, got.P99)
		}
		if !strings.Contains(r.stderr, "200/200 devices") {
			t.Errorf("progress: got %q, want a line with 200/200 devices", r.stderr)
		}
	})
	t.Run("table", func(t *testing.T) {
		r := ghEnv(t, map[string]string{}, args...)
		if r.code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		for _, want := range []string{"provisioned 200 of 200 devices", "latency   p50", "failures  none", "registry  200 devices for the fleet's enrollment, 0 duplicates",
			"reported  200 devices connected and reported; the registry holds 200 reports"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("got %q, want it to contain %q", r.stdout, want)
			}
		}
		if strings.Contains(r.stdout, "retries   0\n") {
			t.Errorf("got no retries with 10%% drops:\n%s", r.stdout)
		}
	})
}

// TestSimProtocols provisions a few devices over each protocol and
// attestation the simulator offers, renewing each once.
func TestSimProtocols(t *testing.T) {
	for _, pa := range [][2]string{{"native", "symmetric_key"}, {"native", "token"}, {"dps", "symmetric_key"}, {"est", "token"},
		{"native", "x509"}, {"est", "x509"}, {"mqtt", "x509"}} {
		t.Run(pa[0]+"-"+pa[1], func(t *testing.T) {
			r := ghEnv(t, map[string]string{}, "sim", "--devices", "8", "--protocol", pa[0], "--attestation", pa[1],
				"--renew", "--drop-rate", "0.1", "--delay", "1ms", "-o", "json")
			if r.code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			var got simResult
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatal(err)
			}
			if got.Succeeded != 8 || got.Renewed != 8 {
				t.Errorf("got %d succeeded, %d renewed (%v), want 8 and 8", got.Succeeded, got.Renewed, got.Failures)
			}
			if got.Registered != 8 || got.Duplicates != 0 {
				t.Errorf("registry: got %d devices, %d duplicates; want 8 and 0", got.Registered, got.Duplicates)
			}
			if got.ReportedInRegistry != 8 {
				t.Errorf("registry: %d devices hold their report, want 8", got.ReportedInRegistry)
			}
		})
	}
}

func TestSimUsage(t *testing.T) {
	for _, args := range [][]string{
		{"sim", "--devices", "0"},
		{"sim", "--concurrency", "0"},
		{"sim", "--drop-rate", "1"},
		{"sim", "--drop-rate", "-0.1"},
		{"sim", "--rate", "-1"},
		{"sim", "--delay", "-1s"},
		{"sim", "--protocol", "pigeon"},
		{"sim", "--protocols", "native,coap", "--attestation", "token"},
		{"sim", "--protocols", "mqtt>mqtt"},
		{"sim", "--protocols", "native,"},
		{"sim", "--attestation", "tpm"},
		{"sim", "--protocol", "dps", "--attestation", "token"},
		{"sim", "--protocol", "est"},
		{"sim", "--devices", "ten"},
		{"sim", "extra"},
	} {
		if r := ghEnv(t, map[string]string{}, args...); r.code != 2 {
			t.Errorf("%v: got status %d, want 2 (%s)", args, r.code, r.stderr)
		}
	}
}

// TestSimMixedProtocols spreads a small fleet over every transport the SDK
// has, renewing each device once; then a fleet whose first protocol's port
// is closed onboards over the next.
func TestSimMixedProtocols(t *testing.T) {
	t.Run("mix", func(t *testing.T) {
		r := ghEnv(t, map[string]string{}, "sim", "--devices", "15", "--protocols", "native,dps,dps-mqtt,mqtt,coap,est-coaps,dps-mqtt>native",
			"--renew", "-c", "8", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		var got simResult
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatal(err)
		}
		if got.Succeeded != 15 || got.Renewed != 15 || got.Fallbacks != 0 {
			t.Errorf("got %d succeeded, %d renewed, %d fallbacks (%v), want 15, 15, 0", got.Succeeded, got.Renewed, got.Fallbacks, got.Failures)
		}
		// Devices 1..15 over 7 plans: the first plan gets 3 devices, the others 2;
		// the last plan's devices provision over dps-mqtt, its first choice.
		want := map[string]int{"native": 3, "dps": 2, "dps-mqtt": 4, "mqtt": 2, "coap": 2, "est-coaps": 2}
		for p, n := range want {
			if got.ByProtocol[p].Succeeded != n {
				t.Errorf("%s: %d devices, want %d (%+v)", p, got.ByProtocol[p].Succeeded, n, got.ByProtocol)
			}
		}
	})
	t.Run("fallback", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		r := ghEnv(t, map[string]string{}, "sim", "--devices", "6", "--protocols", "mqtt>native", "--mqtt-addr", closed, "--attestation", "token")
		if r.code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		for _, want := range []string{"provisioned 6 of 6 devices", "fallbacks 6\n", "native          6 devices", "retries   0\n"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("got %q, want it to contain %q", r.stdout, want)
			}
		}
	})
}

// TestGivenDuplicates: a device ID or a certificate serial given to two
// simulated devices counts as a duplicate; renewing gives a device a second,
// different serial, which does not.
func TestGivenDuplicates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		given []simIdentity
		want  int
	}{
		{"distinct", []simIdentity{{"a", []string{"1", "2"}}, {"b", []string{"3"}}}, 0},
		{"same device ID", []simIdentity{{"a", []string{"1"}}, {"a", []string{"2"}}}, 1},
		{"same serial", []simIdentity{{"a", []string{"1"}}, {"b", []string{"1"}}}, 1},
		{"no certificates", []simIdentity{{"a", []string{""}}, {"b", []string{""}}}, 0},
	} {
		ids, got := givenDuplicates(tc.given)
		if got != tc.want {
			t.Errorf("%s: got %d duplicates, want %d", tc.name, got, tc.want)
		}
		for _, g := range tc.given {
			if !ids[g.deviceID] {
				t.Errorf("%s: device %q missing from the IDs", tc.name, g.deviceID)
			}
		}
	}
}
