package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ensureAdminToken makes sure DATA/admin-token holds a working
// installation-wide admin token: it creates one on first start, and on later
// starts makes sure the database knows it (see AdoptGlobalAdminToken).
func (s *Server) ensureAdminToken(ctx context.Context) error {
	path := filepath.Join(s.cfg.DataDir, AdminTokenFile)
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("restrict %s: %w", path, err)
		}
		if err := s.registry.AdoptGlobalAdminToken(ctx, string(bytes.TrimSpace(raw)), "admin-token file"); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read %s: %w", path, err)
	}
	grant, err := s.registry.CreateGlobalAdminToken(ctx, "admin-token file")
	if err != nil {
		return fmt.Errorf("create admin token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	_, werr := f.WriteString(grant.Secret + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	s.log.Info("created the installation admin token", "file", path, "token_id", grant.ID)
	return nil
}
