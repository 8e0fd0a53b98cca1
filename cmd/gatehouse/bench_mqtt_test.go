package main

import (
	"encoding/json"
	"os"
	"testing"
)

// TestMain lets this test binary stand in for the gatehouse binary: "bench
// mqtt" starts os.Executable() as its server ("gatehouse serve"), which in
// a test is this binary, told so by GATEHOUSE_TEST_AS_CLI.
func TestMain(m *testing.M) {
	if os.Getenv("GATEHOUSE_TEST_AS_CLI") == "1" {
		os.Args = append([]string{"gatehouse"}, os.Args[1:]...)
		os.Exit(Main())
	}
	os.Exit(m.Run())
}

// TestBenchMQTT holds a few real sessions against a child server and
// reports its memory.
func TestBenchMQTT(t *testing.T) {
	t.Setenv("GATEHOUSE_TEST_AS_CLI", "1")
	r := ghEnv(t, nil, "bench", "mqtt", "--sessions", "40", "--sources", "2", "--hold", "1s", "-o", "json")
	if r.code != 0 {
		t.Fatalf("bench mqtt: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var res benchMQTTResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("bench mqtt -o json: %v\n%s", err, r.stdout)
	}
	if res.Sessions != 40 || res.Sources != 2 || res.ConnectRate <= 0 {
		t.Errorf("sessions %d from %d sources at %v/s, want 40 from 2", res.Sessions, res.Sources, res.ConnectRate)
	}
	if res.RSS <= 0 || res.IdleRSS <= 0 || res.PeakRSS < res.RSS || res.HeapInuse <= 0 || res.Goroutines < 80 {
		t.Errorf("server memory figures: %+v", res)
	}
	// The registry saw every device online (presence is written within
	// 200 ms; the metrics read it from the database).
	if res.DevicesOnline != 40 {
		t.Errorf("devices online %d, want 40", res.DevicesOnline)
	}
	if res.ClientRSS <= 0 || res.ClientRSS == res.RSS {
		t.Errorf("client RSS %d should be this process's, apart from the server's %d", res.ClientRSS, res.RSS)
	}
	if res := ghEnv(t, nil, "bench", "mqtt", "--sessions", "0"); res.code != 2 {
		t.Errorf("bench mqtt --sessions 0: exit %d, want 2", res.code)
	}
}
