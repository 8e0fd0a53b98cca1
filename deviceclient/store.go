package deviceclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Identity is what a device keeps between boots: who it is, where it was
// assigned, and its operational credentials.
type Identity struct {
	// Server is the ServerURL the identity came from: a client of another
	// server does not reuse it.
	Server         string            `json:"server,omitempty"`
	Scope          string            `json:"scope"`
	RegistrationID string            `json:"registrationId"`
	DeviceID       string            `json:"deviceId"`
	EnrollmentID   string            `json:"enrollmentId,omitempty"`
	AssignedHub    string            `json:"assignedHub,omitempty"`
	Protocol       Protocol          `json:"protocol"`
	CertificatePEM string            `json:"certificate,omitempty"` // the device's operational certificate
	KeyPEM         string            `json:"key,omitempty"`         // its private key (PKCS #8)
	ChainPEM       string            `json:"chain,omitempty"`       // issuing CA through the root
	NotBefore      time.Time         `json:"notBefore,omitzero"`
	NotAfter       time.Time         `json:"notAfter,omitzero"`
	Config         json.RawMessage   `json:"config,omitempty"`
	Tags           map[string]string `json:"tags,omitempty"`
	ProvisionedAt  time.Time         `json:"provisionedAt"`
	RenewedAt      time.Time         `json:"renewedAt,omitzero"`
}

// ErrNoIdentity is returned by a Store that holds no identity yet.
var ErrNoIdentity = errors.New("deviceclient: no stored identity")

// Store keeps a device's identity. Load returns ErrNoIdentity when there is
// none. Implementations must make Save atomic: after a crash, Load returns
// either the old identity or the new one.
type Store interface {
	Load(ctx context.Context) (*Identity, error)
	Save(ctx context.Context, id *Identity) error
}

// FileStore keeps the identity in one JSON file, mode 0600, replaced
// atomically (write a temporary file, sync it, rename it over the old one,
// sync the directory).
type FileStore struct {
	Path string
}

// Load implements Store.
func (f FileStore) Load(ctx context.Context) (*Identity, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoIdentity
	} else if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("load identity from %s: %w", f.Path, err)
	}
	return &id, nil
}

// Save implements Store.
func (f FileStore) Save(ctx context.Context, id *Identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".identity-*")
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// StateDirEnv names the environment variable that, when set, is the
// directory DefaultStorePath keeps identities in.
const StateDirEnv = "GATEHOUSE_DEVICE_STATE_DIR"

// DefaultStorePath is where a Client keeps a device's identity unless
// Config.Store says otherwise: {dir}/{scope}/{registrationID}.json, dir
// being $GATEHOUSE_DEVICE_STATE_DIR or else gatehouse-device in the user's
// configuration directory (os.UserConfigDir: $XDG_CONFIG_HOME or
// ~/.config on Linux). The scope and registration ID are path-escaped, so
// neither can leave dir.
func DefaultStorePath(scope, registrationID string) (string, error) {
	dir := os.Getenv(StateDirEnv)
	if dir == "" {
		cfg, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("deviceclient: no directory to keep the identity in (set Config.Store, or %s): %w", StateDirEnv, err)
		}
		dir = filepath.Join(cfg, "gatehouse-device")
	}
	return filepath.Join(dir, pathSegment(scope), pathSegment(registrationID)+".json"), nil
}

// pathSegment is s as one file name on any system: escaped ("/" and ":",
// which names a stream on Windows, included), and never "." or "..".
func pathSegment(s string) string {
	s = strings.ReplaceAll(url.PathEscape(s), ":", "%3A")
	if s == "." || s == ".." {
		s = strings.ReplaceAll(s, ".", "%2E")
	}
	return s
}

// MemoryStore keeps the identity in memory, for the life of the process
// (tests, simulators).
type MemoryStore struct{ id *Identity }

// Load implements Store.
func (m *MemoryStore) Load(context.Context) (*Identity, error) {
	if m.id == nil {
		return nil, ErrNoIdentity
	}
	c := *m.id
	return &c, nil
}

// Save implements Store.
func (m *MemoryStore) Save(_ context.Context, id *Identity) error {
	c := *id
	m.id = &c
	return nil
}
