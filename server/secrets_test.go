package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// TestSecretsAtRest: enrollment keys and bootstrap tokens, which the server
// must read back or compare, never appear in plaintext in any file of the
// data directory (the database and its WAL included), in any encoding.
func TestSecretsAtRest(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	ctx := context.Background()
	reg := n.srv.Registry()
	p, err := reg.Authenticate(ctx, n.admin)
	if err != nil {
		t.Fatal(err)
	}
	sym, err := reg.CreateEnrollment(ctx, p, "default", registry.EnrollmentCreate{ID: "g-sym", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := reg.CreateEnrollment(ctx, p, "default", registry.EnrollmentCreate{ID: "g-tok", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, MaxUses: 3}})
	if err != nil {
		t.Fatal(err)
	}
	var needles [][]byte
	for _, k := range []string{sym.Attestation.PrimaryKey, sym.Attestation.SecondaryKey} {
		raw, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(raw) < 32 {
			t.Fatalf("generated key %d bytes, %v", len(raw), err)
		}
		needles = append(needles, []byte(k), raw)
	}
	needles = append(needles, []byte(tok.Attestation.Token))
	// Make sure everything is on disk, then look at every byte.
	if err := n.srv.Close(); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		raw, _ := os.ReadFile(path)
		for _, s := range needles {
			if bytes.Contains(raw, s) {
				t.Errorf("%s holds an enrollment secret in plaintext", filepath.Base(path))
			}
		}
		return nil
	})
	// And the server can still use them after a restart (they are sealed,
	// not lost).
	n2 := startNode(t, dir)
	p2, _ := n2.srv.Registry().Authenticate(ctx, n2.admin)
	e, err := n2.srv.Registry().GetEnrollment(ctx, p2, "default", "g-sym")
	if err != nil {
		t.Fatal(err)
	}
	sec, err := n2.srv.Registry().EnrollmentSecrets(e)
	if err != nil || base64.StdEncoding.EncodeToString(sec.PrimaryKey) != sym.Attestation.PrimaryKey {
		t.Errorf("sealed key does not open to the original after restart: %v", err)
	}
}
