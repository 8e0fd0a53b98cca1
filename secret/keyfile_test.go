package secret

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateMasterKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "master.key")
	r1, err := LoadOrCreateMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	text, _ := os.ReadFile(path)
	if len(text) != 2*KeySize+1 || text[len(text)-1] != '\n' {
		t.Errorf("key file is %d bytes %q..., want 64 hex characters and a newline", len(text), text[:min(8, len(text))])
	}
	key, _ := hex.DecodeString(strings.TrimSpace(string(text)))
	if got, want := r1.KeyID(), KeyID(key); got != want {
		t.Errorf("KeyID() = %s, want %s", got, want)
	}

	r2, err := LoadOrCreateMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if r1.KeyID() != r2.KeyID() {
		t.Errorf("second start got key %s, first %s", r2.KeyID(), r1.KeyID())
	}
	blob, _ := r1.Seal([]byte("x"), nil)
	if _, err := r2.Open(blob, nil); err != nil {
		t.Errorf("reloaded key cannot open: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key (temp files left behind?)", len(entries))
	}
}

func TestLoadOrCreateMasterKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	const n = 16
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := LoadOrCreateMasterKey(path)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = r.KeyID()
		})
	}
	wg.Wait()
	for i, id := range ids {
		if id != ids[0] {
			t.Errorf("caller %d got key %s, caller 0 got %s", i, id, ids[0])
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
}

func TestLoadMasterKeyFile(t *testing.T) {
	good := hex.EncodeToString(bytes.Repeat([]byte{0xab}, KeySize))
	tests := []struct {
		name    string
		content string // "" with noFile: no file at all
		mode    os.FileMode
		noFile  bool
		wantErr string // substring; "" for success
	}{
		{name: "good", content: good + "\n", mode: 0o600},
		{name: "no newline", content: good, mode: 0o600},
		{name: "surrounding space", content: "  " + good + " \r\n\n", mode: 0o600},
		{name: "uppercase hex", content: strings.ToUpper(good), mode: 0o600},
		{name: "owner read only", content: good, mode: 0o400},
		{name: "missing", noFile: true, wantErr: "no such file"},
		{name: "group readable", content: good, mode: 0o640, wantErr: "chmod 600"},
		{name: "world readable", content: good, mode: 0o604, wantErr: "chmod 600"},
		{name: "group writable", content: good, mode: 0o620, wantErr: "chmod 600"},
		{name: "empty", content: "", mode: 0o600, wantErr: "must be 64 hex"},
		{name: "short", content: good[:62], mode: 0o600, wantErr: "has 62 characters"},
		{name: "long", content: good + "ab", mode: 0o600, wantErr: "has 66 characters"},
		{name: "raw bytes", content: string(bytes.Repeat([]byte{1}, KeySize)), mode: 0o600, wantErr: "has 32 characters"},
		{name: "not hex", content: "zz" + good[2:], mode: 0o600, wantErr: "not valid hex"},
		{name: "huge", content: strings.Repeat("a", 10000), mode: 0o600, wantErr: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if runtime.GOOS == "windows" && strings.Contains(tt.wantErr, "chmod") {
				t.Skip("no Unix permissions")
			}
			path := filepath.Join(t.TempDir(), "master.key")
			if !tt.noFile {
				if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
					t.Fatal(err)
				}
				os.Chmod(path, tt.mode) // WriteFile's mode is masked by umask
			}
			r, err := LoadMasterKeyFile(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got, want := r.KeyID(), KeyID(bytes.Repeat([]byte{0xab}, KeySize)); got != want {
					t.Errorf("KeyID() = %s, want %s", got, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(strings.ToLower(err.Error()), good[:16]) {
				t.Errorf("error %q quotes the key", err)
			}
		})
	}
}

// LoadOrCreateMasterKey must not replace a key file it refuses: a bad file is
// the operator's to fix, not ours to overwrite.
func TestLoadOrCreateMasterKeyKeepsBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := LoadOrCreateMasterKey(path); err == nil {
		t.Fatal("accepted a short key file")
	}
	if got, _ := os.ReadFile(path); string(got) != "short" {
		t.Errorf("key file now holds %q", got)
	}
}

func TestLoadMasterKeyFileNotExist(t *testing.T) {
	_, err := LoadMasterKeyFile(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want fs.ErrNotExist", err)
	}
}

func TestAddOldKeyFile(t *testing.T) {
	dir := t.TempDir()
	oldRing, err := LoadOrCreateMasterKey(filepath.Join(dir, "old.key"))
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := oldRing.Seal([]byte("s"), []byte("r"))
	r, err := LoadOrCreateMasterKey(filepath.Join(dir, "new.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddOldKeyFile(filepath.Join(dir, "old.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open(blob, []byte("r")); err != nil {
		t.Error(err)
	}
	if err := r.AddOldKeyFile(filepath.Join(dir, "missing.key")); err == nil {
		t.Error("AddOldKeyFile accepted a missing file")
	}
}

func FuzzParseMasterKey(f *testing.F) {
	f.Add([]byte(strings.Repeat("ab", KeySize) + "\n"))
	f.Add([]byte(""))
	f.Add([]byte(strings.Repeat("g", 2*KeySize)))
	f.Fuzz(func(t *testing.T, text []byte) {
		key, err := ParseMasterKey(text)
		if err != nil {
			if key.Len() != 0 {
				t.Errorf("key returned with error %v", err)
			}
			return
		}
		if key.Len() != KeySize {
			t.Fatalf("parsed a %d-byte key", key.Len())
		}
		if _, err := NewKeyring(key.Reveal()); err != nil {
			t.Fatal(err)
		}
	})
}
