package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/gatehouse-iot/gatehouse/store/postgres/pgtest"
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

// TestBenchProvisionPostgres runs the benchmark's in-process server on a
// PostgreSQL database (--database), and checks that the devices are there.
func TestBenchProvisionPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	r := ghEnv(t, map[string]string{}, "bench", "provision", "--database", dsn, "--devices", "24", "--fresh-tls", "-c", "4", "--floor-count", "8", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	var got struct {
		Rate   float64 `json:"rate"`
		Errors int     `json:"errors"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	if got.Rate <= 0 || got.Errors != 0 {
		t.Errorf("got rate %v, %d errors; want a rate and no errors", got.Rate, got.Errors)
	}
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	counts, err := st.CountDevices(context.Background(), gatehouse.DefaultScope, "state")
	if err != nil || counts[string(gatehouse.StateProvisioned)] != 24 {
		t.Errorf("the PostgreSQL database holds %v devices by state (err %v), want the 24 provisioned", counts, err)
	}
}

func TestBenchProvisionUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "provision", "--devices", "0"},
		{"bench", "provision", "--concurrency", "0"},
		{"bench", "provision", "--server", "https://127.0.0.1:1", "--database", "postgres://x/y"},
	} {
		if r := ghEnv(t, map[string]string{}, args...); r.code != 2 {
			t.Errorf("%v: got status %d, want 2 (%s)", args, r.code, r.stderr)
		}
	}
}

// TestBenchQuery runs the query benchmark on a few hundred devices, in
// process (seeded by the bench) and against a running server (seeded here
// through "gatehouse import"), and checks the report's shape and values.
func TestBenchQuery(t *testing.T) {
	n := startNode(t)
	csv := filepath.Join(t.TempDir(), "devs.csv")
	var b strings.Builder
	b.WriteString("id,tags.site,config\n")
	for i := range 250 {
		fmt.Fprintf(&b, "q-%04d,site-%d,{}\n", i, i%5)
	}
	if err := os.WriteFile(csv, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	n.ok("import", csv)

	for _, tc := range []struct {
		name    string
		args    []string
		devices int64
		tagPage float64 // items per tag-eq answer
	}{
		{"in-process", []string{"bench", "query", "--devices", "300", "--requests", "40", "--count-requests", "7", "-c", "3", "--limit", "50", "-o", "json"}, 300, 6},
		{"remote", []string{"bench", "query", "--server", n.srv.URL(), "--requests", "30", "-c", "2", "--limit", "20", "-o", "json"}, 250, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := n.ok(tc.args...)
			var got benchQueryResult
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if got.Devices != tc.devices || got.Walked != tc.devices {
				t.Errorf("devices %d, walked %d: want %d both", got.Devices, got.Walked, tc.devices)
			}
			if got.Errors != 0 {
				t.Errorf("errors: got %d, want 0\n%s", got.Errors, out)
			}
			if got.Connections < 1 || got.Connections > int64(got.Concurrency) {
				t.Errorf("connections: got %d, want 1..%d (kept open)", got.Connections, got.Concurrency)
			}
			want := []string{"walk", "first-page", "deep-page", "tag-eq", "tag-in", "state", "count-state", "count-tag"}
			var names []string
			for _, q := range got.Queries {
				names = append(names, q.Name)
			}
			if diff := cmp.Diff(want, names); diff != "" {
				t.Fatalf("queries (-want +got):\n%s", diff)
			}
			items := map[string]float64{}
			for _, q := range got.Queries {
				want := got.Requests
				if strings.HasPrefix(q.Name, "count-") {
					want = got.CountReqs
				}
				if q.Name != "walk" && q.Requests != want {
					t.Errorf("%s: %d requests, want %d", q.Name, q.Requests, want)
				}
				if q.P50 <= 0 || q.P50 > q.P95 || q.P95 > q.P99 || q.P99 > q.Max || q.Rate <= 0 {
					t.Errorf("%s: p50 %v p95 %v p99 %v max %v rate %v: want 0 < p50 <= p95 <= p99 <= max, rate > 0", q.Name, q.P50, q.P95, q.P99, q.Max, q.Rate)
				}
				items[q.Name] = q.Items
			}
			if items["first-page"] != float64(got.Limit) || items["deep-page"] <= 0 || items["tag-eq"] != tc.tagPage || items["count-state"] != 0 {
				t.Errorf("items per answer: got %v, want first-page %d, deep-page > 0, tag-eq %v, counts 0", items, got.Limit, tc.tagPage)
			}
			if tc.name == "in-process" && (got.HeapMiB <= 0 || got.RSSMiB < got.HeapMiB) {
				t.Errorf("memory: heap %v MiB, RSS %v MiB: want 0 < heap <= RSS", got.HeapMiB, got.RSSMiB)
			}
		})
	}
}

// TestBenchQueryChecks makes sure a wrong answer is caught: pages checked
// against the counts and the filter.
func TestBenchQueryChecks(t *testing.T) {
	page := func(items ...string) []byte {
		var p benchPage
		for _, it := range items {
			id, site, _ := strings.Cut(it, ":")
			p.Items = append(p.Items, benchDevice{ID: id, State: "provisioned", Tags: map[string]string{"site": site}})
		}
		b, _ := json.Marshal(p)
		return b
	}
	site1 := func(d *benchDevice) bool { return d.Tags["site"] == "s1" }
	for _, tc := range []struct {
		name  string
		check func([]byte) (int, error)
		body  []byte
		ok    bool
	}{
		{"full page", checkPage(2, site1), page("a:s1", "b:s1"), true},
		{"short page", checkPage(3, site1), page("a:s1", "b:s1"), false},
		{"filter not applied", checkPage(2, site1), page("a:s1", "b:s2"), false},
		{"out of order", checkPage(2, nil), page("b:s1", "a:s1"), false},
		{"deep page empty", checkPage(-1, nil), page(), false},
		{"counts right", checkCounts(3), []byte(`{"by":"state","counts":{"active":1,"provisioned":2},"total":3}`), true},
		{"counts off", checkCounts(4), []byte(`{"by":"state","counts":{"active":1,"provisioned":2},"total":3}`), false},
	} {
		n, err := tc.check(tc.body)
		if (err == nil) != tc.ok {
			t.Errorf("%s: got error %v, want ok=%v", tc.name, err, tc.ok)
		}
		if tc.name == "full page" && n != 2 {
			t.Errorf("%s: got %d items, want 2", tc.name, n)
		}
	}
}

func TestBenchQueryUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "query", "--requests", "0"},
		{"bench", "query", "--count-requests", "0"},
		{"bench", "query", "--limit", "1001"},
		{"bench", "query", "--concurrency", "0"},
		{"bench", "query", "--tag-key", "Bad Key"},
	} {
		if r := ghEnv(t, map[string]string{}, args...); r.code != 2 {
			t.Errorf("%v: got status %d, want 2 (%s)", args, r.code, r.stderr)
		}
	}
}
