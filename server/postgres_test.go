package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/server"
	"github.com/gatehouse-iot/gatehouse/store/postgres/pgtest"
)

// TestTwoNodesSharePostgres runs two nodes, each with its own data directory,
// on one PostgreSQL database with one master key: what one writes the other
// reads, both serve the same installation CA, and an event committed through
// one reaches a stream on the other (by polling).
func TestTwoNodesSharePostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	keyFile := filepath.Join(t.TempDir(), "master.key")
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() *node {
		dir := t.TempDir()
		var logs bytes.Buffer
		srv, err := server.Start(context.Background(), server.Config{
			DataDir: dir, HTTPAddr: "127.0.0.1:0", Database: dsn, MasterKeyFile: keyFile,
			Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		})
		if err != nil {
			t.Fatalf("start node: %v", err)
		}
		t.Cleanup(func() { srv.Close() })
		return attach(t, dir, srv, &logs)
	}
	a, b := start(), start()
	caA, _ := os.ReadFile(filepath.Join(a.dir, server.CAFile))
	caB, _ := os.ReadFile(filepath.Join(b.dir, server.CAFile))
	if !bytes.Equal(caA, caB) {
		t.Error("the nodes created different installation CAs")
	}
	if _, err := os.Stat(filepath.Join(a.dir, server.MasterKeyFile)); err == nil {
		t.Error("a node created its own master key although one was configured")
	}
	a.must(a.admin, "POST", "/v1/scopes/default/devices", `{"id":"shared-1","tags":{"site":"x"}}`, 201)
	// Node B's admin token works on node A too: both live in one database.
	d := b.must(a.admin, "GET", "/v1/scopes/default/devices/shared-1", "", 200)
	if d["tags"].(map[string]any)["site"] != "x" {
		t.Errorf("node B reads %v", d)
	}
	b.must(b.admin, "POST", "/v1/scopes/default/devices/shared-1/state", `{"state":"active"}`, 200)
	if got := a.must(a.admin, "GET", "/v1/scopes/default/devices/shared-1", "", 200)["state"]; got != "active" {
		t.Errorf("node A reads state %v", got)
	}
	// Events written through both nodes form one gap-free log.
	evs := a.must(a.admin, "GET", "/v1/scopes/default/events?after=0", "", 200)["items"].([]any)
	var types []string
	for i, e := range evs {
		m := e.(map[string]any)
		if int(m["seq"].(float64)) != i+1 {
			t.Fatalf("event %d has seq %v", i, m["seq"])
		}
		types = append(types, m["type"].(string))
	}
	if got := strings.Join(types, ","); got != "scope.created,ca.created,device.created,device.state_changed" {
		t.Errorf("events = %s", got)
	}
	// A restart of node A on the same database keeps its admin token valid.
	a.srv.Close()
	time.Sleep(10 * time.Millisecond)
	b.must(a.admin, "GET", "/v1/scopes", "", 200)
}
