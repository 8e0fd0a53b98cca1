package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
)

// Backup writes a consistent snapshot of the database to path (which must
// not exist) with VACUUM INTO, while the store keeps serving: it reads one
// snapshot through a reader connection, so writers are not blocked. The
// file is created 0600 and is a complete, compacted database that Open
// can use as is.
func (s *Store) Backup(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("backup: %s exists", path)
	}
	// Create it 0600 first: VACUUM INTO would make it with the umask's mode.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f.Close()
	// A connection of its own: the readers are query_only, which VACUUM
	// INTO refuses, and the writer's connection would hold up every write.
	// In WAL mode the snapshot's read transaction blocks no writer.
	db, err := sql.Open("sqlite", dsn(s.path, s.opts, false))
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("backup: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("backup: vacuum into %s: %w", path, err)
	}
	return nil
}
