package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

func TestBackup(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	err = s.Update(ctx, func(tx gatehouse.Tx) error {
		if err := tx.CreateScope(&gatehouse.Scope{ID: "acme", CreatedAt: now}); err != nil {
			return err
		}
		return tx.AppendEvent(&gatehouse.Event{Scope: "acme", Type: "x.y", Time: now, Actor: "system", Subject: "s"})
	})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "backup.db")
	if err := s.Backup(ctx, out); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v", err, fi.Mode().Perm())
	}
	if err := s.Backup(ctx, out); err == nil {
		t.Error("backup over an existing file succeeded")
	}
	b, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.GetScope(ctx, "acme"); err != nil {
		t.Errorf("scope not in backup: %v", err)
	}
	if evs, err := b.ListEvents(ctx, "acme", 0, 0); err != nil || len(evs) != 1 {
		t.Errorf("events in backup: %v (err %v)", evs, err)
	}
}
