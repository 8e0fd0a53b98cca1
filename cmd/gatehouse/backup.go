package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse/server"
	"github.com/gatehouse-iot/gatehouse/store/sqlite"
)

// backupFiles are what a backup holds: the database snapshot and the key
// files needed to read it (the master key unseals every secret in it).
var backupFiles = []string{server.SQLiteFile, server.MasterKeyFile, server.AdminTokenFile}

func (a *app) backupCommand() *cobra.Command {
	var out, database string
	cmd := &cobra.Command{
		Use:   "backup --out FILE.tar.gz",
		Short: "Write an online, consistent backup of an SQLite node's data directory",
		Long: `Backup snapshots the SQLite database of the data directory (while the server
keeps running) and archives it with the master key and the admin token,
which a restore needs to read it. The archive is written 0600: it holds every
secret of the installation.

For PostgreSQL, back up the database with its own tools (pg_dump, or
continuous archiving) and keep a copy of the master key file.`,
		Example: `  gatehouse backup --data-dir /var/lib/gatehouse --out gatehouse-$(date +%F).tar.gz`,
		Args:    cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("--out is required")
			}
			if database == "" {
				database = strings.TrimSpace(a.getenv(envDatabase))
			}
			if strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://") {
				return usagef("backup copies SQLite databases only; for PostgreSQL use pg_dump (or continuous archiving) and keep a copy of %s", server.MasterKeyFile)
			}
			dataDir := a.dataDirSetting()
			dbPath := filepath.Join(dataDir, server.SQLiteFile)
			if p, ok := strings.CutPrefix(database, "sqlite://"); ok {
				dbPath = p
			}
			if err := writeBackup(cmd.Context(), dataDir, dbPath, out); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "wrote backup of %s to %s\n", dataDir, out)
			return nil
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "the archive to write (.tar.gz); must not exist")
	cmd.Flags().StringVar(&database, "database", "", "database URL (env "+envDatabase+"; default sqlite:///DATA/gatehouse.db)")
	return cmd
}

// dataDirSetting is --data-dir, else its environment variable, else the default.
func (a *app) dataDirSetting() string {
	if d := a.setting("data-dir", envDataDir); d != "" {
		return d
	}
	return defaultDataDir
}

// writeBackup snapshots dbPath through the store's Backup (VACUUM INTO, which
// blocks no writer) and archives it with dataDir's key files into out.
func writeBackup(ctx context.Context, dataDir, dbPath, out string) error {
	if _, err := os.Stat(dbPath); err != nil {
		return fmt.Errorf("backup: no database at %s: %w", dbPath, err)
	}
	for _, name := range backupFiles[1:] {
		if _, err := os.Stat(filepath.Join(dataDir, name)); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	tmp, err := os.MkdirTemp("", "gatehouse-backup-")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(tmp)
	st, err := sqlite.Open(dbPath)
	if err != nil {
		return fmt.Errorf("backup: open %s: %w", dbPath, err)
	}
	snap := filepath.Join(tmp, server.SQLiteFile)
	err = st.Backup(ctx, snap)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("backup: %w", cerr)
	}
	if err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	paths := map[string]string{server.SQLiteFile: snap}
	for _, name := range backupFiles[1:] {
		paths[name] = filepath.Join(dataDir, name)
	}
	err = writeArchive(f, backupFiles, paths)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return fmt.Errorf("backup: write %s: %w", out, err)
	}
	return nil
}

func writeArchive(w io.Writer, names []string, paths map[string]string) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, name := range names {
		if err := addFile(tw, name, paths[name]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func addFile(tw *tar.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: fi.Size(), ModTime: fi.ModTime(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

func (a *app) restoreCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore a backup into a data directory",
		Long: `Restore unpacks an archive written by "gatehouse backup" into the data
directory: the SQLite database, the master key and the admin token, each 0600.
It refuses a directory that is not empty unless --force is given; with
--force the archive's files replace those of the same name. Stop any server
using the directory first.`,
		Example: `  gatehouse restore gatehouse-2026-11-26.tar.gz --data-dir /var/lib/gatehouse`,
		Args:    exactArgs("FILE"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			dataDir := a.dataDirSetting()
			if err := restoreBackup(args[0], dataDir, force); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "restored %s into %s\n", args[0], dataDir)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&force, "force", false, "restore into a directory that is not empty")
	return cmd
}

// restoreBackup unpacks archive into dataDir. Only the files a backup
// holds are accepted, so that no entry can write outside dataDir.
func restoreBackup(archive, dataDir string, force bool) error {
	entries, err := os.ReadDir(dataDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	case err != nil:
		return fmt.Errorf("restore: %w", err)
	case len(entries) > 0 && !force:
		return usagef("%s is not empty; restore into an empty directory, or pass --force to replace its files", dataDir)
	}
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("restore: %s is not a gatehouse backup (gzip: %w)", archive, err)
	}
	tr := tar.NewReader(gz)
	// Unpack next to the targets first: a broken archive leaves dataDir as it was.
	staged := map[string]string{}
	defer func() {
		for _, p := range staged {
			os.Remove(p)
		}
	}()
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("restore: %s is cut off or not a gatehouse backup: %w", archive, err)
		}
		known := false
		for _, n := range backupFiles {
			known = known || h.Name == n
		}
		if !known || h.Typeflag != tar.TypeReg {
			return fmt.Errorf("restore: %s holds %q, which is not part of a gatehouse backup", archive, h.Name)
		}
		tmp := filepath.Join(dataDir, "."+h.Name+".restore")
		staged[h.Name] = tmp
		out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("restore: %s: %w", h.Name, err)
		}
	}
	for _, n := range backupFiles {
		if _, ok := staged[n]; !ok {
			return fmt.Errorf("restore: %s has no %s; it is not a complete gatehouse backup", archive, n)
		}
	}
	// The old database's WAL would be replayed onto the restored file.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(filepath.Join(dataDir, server.SQLiteFile+suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restore: %w", err)
		}
	}
	for _, n := range backupFiles {
		if err := os.Rename(staged[n], filepath.Join(dataDir, n)); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		delete(staged, n)
	}
	return nil
}
