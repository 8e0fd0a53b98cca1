package ca

import (
	"os"
	"path/filepath"
	"runtime"
)

// WriteFileAtomic replaces path with data: readers see the old contents or
// the new, never a partial file, and after a crash the file holds one of
// them. It writes a temporary file in path's directory, syncs it, renames it
// over path and syncs the directory. perm applies exactly, not masked by the
// umask.
//
// It lives here because ca.pem is its first user; move it to a small package
// of its own (internal/atomicfile) when a second package needs it.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if err != nil && !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	renamed = true
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
