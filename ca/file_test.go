package ca

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ca.pem")
	tests := []struct {
		name string
		data string
		perm os.FileMode
	}{
		{"create", "first", 0o644},
		{"replace", "second, longer than the first", 0o644},
		{"replace shorter, new mode", "3", 0o600},
		{"empty", "", 0o640},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := WriteFileAtomic(path, []byte(tt.data), tt.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.data {
				t.Errorf("got %q, want %q", got, tt.data)
			}
			fi, _ := os.Stat(path)
			if runtime.GOOS != "windows" && fi.Mode().Perm() != tt.perm {
				t.Errorf("mode %04o, want %04o", fi.Mode().Perm(), tt.perm)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want 1 (temp file left behind?)", len(entries))
			}
		})
	}
}

func TestWriteFileAtomicFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	// Renaming a file over a non-empty directory fails.
	target := filepath.Join(dir, "ca.pem")
	os.MkdirAll(filepath.Join(target, "x"), 0o755)
	if err := WriteFileAtomic(target, []byte("data"), 0o644); err == nil {
		t.Fatal("wrote over a directory")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (temp file left behind?)", len(entries))
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "ca.pem"), nil, 0o644); err == nil {
		t.Error("wrote into a missing directory")
	}
}
