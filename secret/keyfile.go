package secret

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// maxKeyFileSize bounds what readKeyFile reads, so that pointing
// GATEHOUSE_MASTER_KEY_FILE at a large file fails fast.
const maxKeyFileSize = 4096

// LoadOrCreateMasterKey returns a Keyring whose primary key is read from
// path, creating the file with a new random key (mode 0600, and its directory
// with 0700) if it does not exist. Creation is atomic and exclusive: the file
// appears complete or not at all, and when several processes start at once
// exactly one creates it and the others read that one's key.
func LoadOrCreateMasterKey(path string) (*Keyring, error) {
	r, err := LoadMasterKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return r, err
	}
	if err := createKeyFile(path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create master key file %s: %w", path, err)
	}
	// Read back whichever key won: ours, or another process's.
	return LoadMasterKeyFile(path)
}

// LoadMasterKeyFile returns a Keyring whose primary key is read from path,
// which must exist. The file holds the key as 64 hex characters; it must not
// be readable or writable by group or others.
func LoadMasterKeyFile(path string) (*Keyring, error) {
	key, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	defer key.Wipe()
	return NewKeyring(key.Reveal())
}

// readKeyFile reads and checks a master key file.
func readKeyFile(path string) (Bytes, error) {
	f, err := os.Open(path)
	if err != nil {
		return Bytes{}, fmt.Errorf("master key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Bytes{}, fmt.Errorf("master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Bytes{}, fmt.Errorf("master key file %s is not a regular file", path)
	}
	// Windows has no Unix permission bits; its ACLs are the operator's job.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return Bytes{}, fmt.Errorf("master key file %s has mode %04o, which lets group or others access it; run: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	buf := make([]byte, maxKeyFileSize+1)
	n, err := io.ReadFull(f, buf)
	defer clear(buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	if err != nil {
		return Bytes{}, fmt.Errorf("master key file %s: %w", path, err)
	}
	if n > maxKeyFileSize {
		return Bytes{}, fmt.Errorf("master key file %s is larger than %d bytes; it must hold %d hex characters", path, maxKeyFileSize, 2*KeySize)
	}
	key, err := ParseMasterKey(buf[:n])
	if err != nil {
		return Bytes{}, fmt.Errorf("master key file %s: %w", path, err)
	}
	return key, nil
}

// ParseMasterKey decodes the contents of a master key file: 64 hex
// characters, with optional surrounding whitespace. Its errors never quote
// the input.
func ParseMasterKey(text []byte) (Bytes, error) {
	text = bytes.TrimSpace(text)
	if len(text) != 2*KeySize {
		return Bytes{}, fmt.Errorf("master key has %d characters; it must be %d hex characters (%d bytes); generate one with: openssl rand -hex %d", len(text), 2*KeySize, KeySize, KeySize)
	}
	key := make([]byte, KeySize)
	if _, err := hex.Decode(key, text); err != nil {
		clear(key)
		return Bytes{}, errors.New("master key is not valid hex; it must be 64 characters 0-9a-f")
	}
	return NewBytes(key), nil
}

// createKeyFile writes a new random key to a temporary file in path's
// directory and hard-links it to path. link(2) fails if path exists, which
// gives O_EXCL semantics, and the linked file is already complete, so no
// process ever reads a half-written key.
func createKeyFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key := make([]byte, KeySize)
	defer clear(key)
	rand.Read(key)
	text := make([]byte, 2*KeySize+1)
	defer clear(text)
	hex.Encode(text, key)
	text[len(text)-1] = '\n'

	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(text); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("%w (the key file is published with a hard link; on a file system without them, create it yourself: openssl rand -hex %d > %s && chmod 600 %s)", err, KeySize, path, path)
	}
	return syncDir(dir)
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
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
