package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// TestMigrationFilterIndexes upgrades a version 4 database holding data to
// version 5: the indexes appear, the rows stay, the filters answer the same.
func TestMigrationFilterIndexes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	na := now.Add(48 * time.Hour)
	if err := s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: now}); err != nil {
			return err
		}
		if err := tx.CreateCredential(&gatehouse.Credential{ID: "c1", Scope: "acme", DeviceID: "d1", Kind: gatehouse.CredentialX509,
			Status: gatehouse.CredentialActive, NotAfter: &na, CreatedAt: now}); err != nil {
			return err
		}
		for _, typ := range []string{"device.created", "token.revoked", "device.deleted"} {
			if err := tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: typ, Time: now, Actor: "system", Subject: "x"}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Back to version 4.
	downgrade(t, s, 4)
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatalf("Open a version 4 file: %v", err)
	}
	defer s.Close()
	var v int
	if err := s.readDB.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != latestVersion() {
		t.Errorf("schema version after the upgrade: got %d (%v), want %d", v, err, latestVersion())
	}
	for _, name := range []string{"events_type", "credentials_active_expiry"} {
		var n int
		if err := s.readDB.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, name).Scan(&n); err != nil || n != 1 {
			t.Errorf("index %s after the upgrade: got %d (%v), want it", name, n, err)
		}
	}
	evs, err := s.QueryEvents(ctx, gatehouse.EventFilter{Scope: "acme", Type: "device.*"})
	if err != nil || len(evs) != 2 || evs[0].Type != "device.created" || evs[1].Type != "device.deleted" {
		t.Errorf("device.* after the upgrade: got %v, %v; want the two device events", evs, err)
	}
	counts, err := s.CountExpiringCredentials(ctx, now, now.Add(72*time.Hour))
	if err != nil || counts["acme"] != 1 {
		t.Errorf("expiring count after the upgrade: got %v, %v; want acme: 1", counts, err)
	}
}
