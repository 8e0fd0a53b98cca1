package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
)

// TestMigrationFilterIndexes upgrades a version 4 database holding data to
// version 5: the indexes appear, the rows stay, the filters answer the same.
func TestMigrationFilterIndexes(t *testing.T) {
	dsn := newDatabase(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	now := ts()
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
	s.Close()
	downgrade(t, dsn, 4)
	conn := connect(t, dsn)

	s = mustOpen(t, dsn)
	wantVersions(t, dsn)
	for _, name := range []string{"events_type_idx", "credentials_active_expiry_idx"} {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE indexname = $1`, name).Scan(&n); err != nil || n != 1 {
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
