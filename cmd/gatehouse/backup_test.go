package main

import (
	"context"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

// TestBackupRestore backs up a running server, restores the archive into a
// new directory and reads the data back through a server started on it.
func TestBackupRestore(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	reg := n.srv.Registry()
	p, err := reg.Authenticate(ctx, n.adminToken())
	if err != nil {
		t.Fatal(err)
	}
	sym, err := reg.CreateEnrollment(ctx, p, "default", registry.EnrollmentCreate{ID: "g-sym", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}})
	if err != nil {
		t.Fatal(err)
	}
	n.ok("device", "create", "bk-1", "--tag", "site=berlin")

	archive := filepath.Join(t.TempDir(), "backup.tar.gz")
	n.ok("backup", "--out", archive)
	if fi, err := os.Stat(archive); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive: %v, %v; want mode 0600", fi, err)
	}
	// Writes after the backup are not in it.
	n.ok("device", "create", "bk-2")
	if r := n.gh("backup", "--out", archive); r.code == 0 {
		t.Errorf("backup over an existing file succeeded: %+v", r)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	env := map[string]string{envDataDir: dir}
	if r := ghEnv(t, env, "restore", archive); r.code != 0 {
		t.Fatalf("restore: %+v", r)
	}
	for _, name := range backupFiles {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("restored %s: %v, %v; want mode 0600", name, fi, err)
		}
	}
	if r := ghEnv(t, env, "restore", archive); r.code != 2 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("restore into a non-empty directory: %+v, want exit 2 naming --force", r)
	}
	if r := ghEnv(t, env, "restore", archive, "--force"); r.code != 0 {
		t.Errorf("restore --force: %+v", r)
	}
	if r := ghEnv(t, env, "backup", "--out", filepath.Join(t.TempDir(), "x.tar.gz"), "--database", "postgres://db/gatehouse"); r.code != 2 || !strings.Contains(r.stderr, "pg_dump") {
		t.Errorf("backup of postgres: %+v, want exit 2 pointing at pg_dump", r)
	}

	srv, err := server.Start(ctx, server.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("start on the restored directory: %v", err)
	}
	defer srv.Close()
	reg2 := srv.Registry()
	p2, err := reg2.Authenticate(ctx, n.adminToken())
	if err != nil {
		t.Fatalf("the old admin token after restore: %v", err)
	}
	d, err := reg2.GetDevice(ctx, p2, "default", "bk-1")
	if err != nil || d.Tags["site"] != "berlin" {
		t.Errorf("device bk-1 after restore = %+v, %v", d, err)
	}
	if _, err := reg2.GetDevice(ctx, p2, "default", "bk-2"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
		t.Errorf("device bk-2, created after the backup: %v, want not_found", err)
	}
	e, err := reg2.GetEnrollment(ctx, p2, "default", "g-sym")
	if err != nil {
		t.Fatal(err)
	}
	sec, err := reg2.EnrollmentSecrets(e)
	if err != nil || base64.StdEncoding.EncodeToString(sec.PrimaryKey) != sym.Attestation.PrimaryKey {
		t.Errorf("enrollment secret after restore does not open to the original: %v", err)
	}
}
