package mqttapi_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/server"
)

// TestEnforcementAcrossNodes: a revocation made through another node
// sharing the database kicks the session within a second.
func TestEnforcementAcrossNodes(t *testing.T) {
	e := newEnv(t)
	dc := e.device("default", "far-1", "")
	c := e.mustDial(&dc.tls, &paho.Connect{ClientID: "far-1"})

	// A second node on the same database (and master key), with a data
	// directory of its own, without MQTT.
	dir := t.TempDir()
	key, err := os.ReadFile(filepath.Join(e.dir, server.MasterKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, server.MasterKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	other, err := server.Start(context.Background(), server.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0",
		Database: "sqlite://" + filepath.Join(e.dir, server.SQLiteFile)})
	if err != nil {
		t.Fatalf("second node: %v", err)
	}
	t.Cleanup(func() { other.Close() })
	tok, _ := os.ReadFile(filepath.Join(e.dir, server.AdminTokenFile))
	admin, err := adminclient.New(other.URL(), strings.TrimSpace(string(tok)), adminclient.WithCAFile(e.caFile()))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := admin.SetState(context.Background(), "default", "far-1", gatehouse.StateInactive, "from the other node", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-c.gone:
		t.Logf("kicked %v after a state change on another node (0x%02x)", time.Since(start), d.ReasonCode)
	case <-time.After(time.Second):
		t.Fatal("not kicked within 1 s of a state change made on another node")
	}
}
