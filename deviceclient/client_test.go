package deviceclient_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/deviceclient"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

// node is a real Gatehouse server on a loopback port.
type node struct {
	srv   *server.Server
	roots *x509.CertPool
	p     *gatehouse.Principal
}

func startNode(tb testing.TB) *node {
	return startNodeWith(tb, &server.RateLimits{PerSource: 1e6, SourceBurst: 1e6, PerID: 1e6, IDBurst: 1e6})
}

func startNodeWith(tb testing.TB, limits *server.RateLimits) *node {
	tb.Helper()
	// Identities kept by default (FileStore) stay with the test: a later
	// test's server may get this one's port.
	tb.Setenv(deviceclient.StateDirEnv, tb.TempDir())
	dir := tb.TempDir()
	srv, err := server.Start(context.Background(), server.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		MQTTAddr: "127.0.0.1:0", CoAPSAddr: "127.0.0.1:0", RateLimits: limits})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	tok, _ := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
	p, err := srv.Registry().Authenticate(context.Background(), strings.TrimSpace(string(tok)))
	if err != nil {
		tb.Fatal(err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, server.CAFile))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return &node{srv: srv, roots: roots, p: p}
}

func (n *node) enroll(tb testing.TB, e registry.EnrollmentCreate) *gatehouse.Enrollment {
	tb.Helper()
	got, err := n.srv.Registry().CreateEnrollment(context.Background(), n.p, "default", e)
	if err != nil {
		tb.Fatal(err)
	}
	return got
}

func (n *node) symmetricGroup(tb testing.TB, id string) []byte {
	e := n.enroll(tb, registry.EnrollmentCreate{ID: id, Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey},
		Credentials: gatehouse.CredentialPolicy{Certificate: gatehouse.CertRequired}})
	key, _ := base64.StdEncoding.DecodeString(e.Attestation.PrimaryKey)
	return key
}

func TestProvisionProtocols(t *testing.T) {
	n := startNode(t)
	groupKey := n.symmetricGroup(t, "line-1")
	tok := n.enroll(t, registry.EnrollmentCreate{ID: "boot", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, MaxUses: 100},
		Credentials: gatehouse.CredentialPolicy{Certificate: gatehouse.CertRequired}}).Attestation.Token
	for _, tc := range []struct {
		proto deviceclient.Protocol
		creds deviceclient.Credentials
	}{
		{deviceclient.Native, deviceclient.Credentials{GroupKey: groupKey}},
		{deviceclient.Native, deviceclient.Credentials{BootstrapToken: tok}},
		{deviceclient.DPS, deviceclient.Credentials{GroupKey: groupKey}},
		{deviceclient.EST, deviceclient.Credentials{BootstrapToken: tok}},
	} {
		name := string(tc.proto) + "-" + map[bool]string{true: "token", false: "key"}[tc.creds.BootstrapToken != ""]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			store := deviceclient.FileStore{Path: filepath.Join(t.TempDir(), "identity.json")}
			cfg := deviceclient.Config{ServerURL: n.srv.URL(), RegistrationID: "dev-" + name, Protocol: tc.proto,
				Credentials: tc.creds, RootCAs: n.roots, Store: store}
			c, err := deviceclient.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			id, err := c.Provision(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if id.DeviceID != "dev-"+name || id.CertificatePEM == "" || id.KeyPEM == "" {
				t.Fatalf("identity: got device %q, certificate %v, key %v", id.DeviceID, id.CertificatePEM != "", id.KeyPEM != "")
			}
			if _, err := id.TLSCertificate(); err != nil {
				t.Fatalf("TLSCertificate: %v", err)
			}
			fi, err := os.Stat(store.Path)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("identity file: %v, mode %v; want 0600", err, fi.Mode().Perm())
			}

			// A reboot reuses the stored identity: no new registration.
			c2, _ := deviceclient.New(cfg)
			again, err := c2.Provision(ctx)
			if err != nil || again.CertificatePEM != id.CertificatePEM {
				t.Fatalf("second boot: got a different identity (err %v)", err)
			}
			if c2.RenewDue(again) {
				t.Fatalf("a fresh certificate is due for renewal")
			}

			// Two thirds of the lifetime later, RenewIfDue renews.
			later := id.NotBefore.Add(id.NotAfter.Sub(id.NotBefore) * 2 / 3).Add(time.Minute)
			cfg.Now = func() time.Time { return later }
			c3, _ := deviceclient.New(cfg)
			if tc.proto == deviceclient.DPS {
				return // DPS has no renewal of its own; the native renew is covered above
			}
			renewed, err := c3.RenewIfDue(ctx)
			if err != nil {
				t.Fatalf("renew: %v", err)
			}
			if renewed.CertificatePEM == id.CertificatePEM || renewed.KeyPEM == id.KeyPEM || renewed.RenewedAt.IsZero() {
				t.Fatalf("renew: certificate or key unchanged")
			}
			if renewed.DeviceID != id.DeviceID {
				t.Fatalf("renew: device %q, want %q", renewed.DeviceID, id.DeviceID)
			}
		})
	}
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	n := startNode(t)
	n.symmetricGroup(t, "line-1")
	var retries atomic.Int32
	c, _ := deviceclient.New(deviceclient.Config{ServerURL: n.srv.URL(), RegistrationID: "dev-1", RootCAs: n.roots,
		Credentials: deviceclient.Credentials{GroupKey: []byte("not the group key")},
		OnRetry:     func(error, time.Duration) { retries.Add(1) }})
	_, err := c.Provision(context.Background())
	var e *deviceclient.Error
	if !errors.As(err, &e) || e.Status != 401 || e.Code != "unauthenticated" {
		t.Fatalf("got %v, want 401 unauthenticated", err)
	}
	if deviceclient.IsRetryable(err) || retries.Load() != 0 {
		t.Fatalf("retried %d times a permanent error", retries.Load())
	}
}

// Dropped connections are retried with backoff until one gets through.
func TestDroppedConnectionsAreRetried(t *testing.T) {
	n := startNode(t)
	groupKey := n.symmetricGroup(t, "line-1")
	var dials atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) <= 3 {
			return nil, errors.New("injected: connection refused")
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	var retries atomic.Int32
	c, _ := deviceclient.New(deviceclient.Config{ServerURL: n.srv.URL(), RegistrationID: "dev-2", RootCAs: n.roots,
		Credentials: deviceclient.Credentials{GroupKey: groupKey}, DialContext: dial,
		Retry:   deviceclient.Retry{Initial: time.Millisecond, Max: 5 * time.Millisecond},
		OnRetry: func(error, time.Duration) { retries.Add(1) }})
	if _, err := c.Provision(context.Background()); err != nil {
		t.Fatal(err)
	}
	if retries.Load() != 3 {
		t.Fatalf("retries: got %d, want 3", retries.Load())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []deviceclient.Config{
		{ServerURL: "http://x", RegistrationID: "a", Credentials: deviceclient.Credentials{BootstrapToken: "t"}},
		{ServerURL: "https://x", Credentials: deviceclient.Credentials{BootstrapToken: "t"}},
		{ServerURL: "https://x", RegistrationID: "a"},
		{ServerURL: "https://x", RegistrationID: "a", Protocol: deviceclient.EST, Credentials: deviceclient.Credentials{GroupKey: []byte("k")}},
		{ServerURL: "https://x", RegistrationID: "a", Protocol: deviceclient.DPS, Credentials: deviceclient.Credentials{BootstrapToken: "t"}},
		{ServerURL: "https://x", RegistrationID: "a", Protocol: deviceclient.DPSMQTT, Credentials: deviceclient.Credentials{BootstrapToken: "t"}},
		{ServerURL: "https://x", RegistrationID: "a", Protocols: []deviceclient.Protocol{deviceclient.NativeMQTT, deviceclient.CoAP},
			Credentials: deviceclient.Credentials{BootstrapToken: "t"}},
		{ServerURL: "https://x", RegistrationID: "a", Protocols: []deviceclient.Protocol{deviceclient.Native, deviceclient.Native},
			Credentials: deviceclient.Credentials{GroupKey: []byte("k")}},
		{ServerURL: "https://x", RegistrationID: "a", Protocol: deviceclient.CoAP, Protocols: []deviceclient.Protocol{deviceclient.Native, deviceclient.CoAP},
			Credentials: deviceclient.Credentials{GroupKey: []byte("k")}},
		{ServerURL: "https://x", RegistrationID: "a", Protocol: "smoke-signals", Credentials: deviceclient.Credentials{GroupKey: []byte("k")}},
	} {
		if _, err := deviceclient.New(cfg); err == nil {
			t.Errorf("New(%+v): got no error", cfg)
		}
	}
}

// TestRenewAfterReset: when the server no longer knows the device's
// certificate (an operator revoked it, or deleted the device), Renew
// registers the device again with its enrollment credentials instead of
// failing, and stores the new identity.
func TestRenewAfterReset(t *testing.T) {
	n := startNode(t)
	groupKey := n.symmetricGroup(t, "line-reset")
	ctx := context.Background()
	for _, reset := range []string{"revoked", "deleted"} {
		t.Run(reset, func(t *testing.T) {
			regID := "dev-reset-" + reset
			store := &deviceclient.MemoryStore{}
			c, err := deviceclient.New(deviceclient.Config{ServerURL: n.srv.URL(), RegistrationID: regID, Protocol: deviceclient.Native,
				Credentials: deviceclient.Credentials{GroupKey: groupKey}, RootCAs: n.roots, Store: store, Retry: deviceclient.Retry{Attempts: 1}})
			if err != nil {
				t.Fatal(err)
			}
			first, err := c.Provision(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := first.TLSCertificate()
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := x509.ParseCertificate(cert.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			switch reset {
			case "revoked":
				if _, err := n.srv.Registry().RevokeCertificate(ctx, n.p, "default", leaf.SerialNumber.Text(16), "keyCompromise"); err != nil {
					t.Fatal(err)
				}
			case "deleted":
				if err := n.srv.Registry().DeleteDevice(ctx, n.p, "default", first.DeviceID, ""); err != nil {
					t.Fatal(err)
				}
			}
			again, err := c.Renew(ctx)
			if err != nil {
				t.Fatalf("Renew after the certificate was %s: %v", reset, err)
			}
			if again.CertificatePEM == first.CertificatePEM || again.KeyPEM == first.KeyPEM {
				t.Fatal("Renew kept the old certificate or key")
			}
			if again.ProvisionedAt.Equal(first.ProvisionedAt) {
				t.Error("Renew did not register again (ProvisionedAt unchanged)")
			}
			if stored, err := store.Load(ctx); err != nil || stored.CertificatePEM != again.CertificatePEM {
				t.Errorf("the store holds another identity (err %v)", err)
			}
			if _, err := n.srv.Registry().GetDevice(ctx, n.p, "default", first.DeviceID); err != nil {
				t.Errorf("the device is not in the registry after registering again: %v", err)
			}
		})
	}
}

// TestDefaultStore: a client without a Store keeps the identity in a file
// of its own under the state directory (mode 0600), and the next boot
// reuses it; the scope and registration ID cannot leave that directory.
func TestDefaultStore(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	t.Setenv(deviceclient.StateDirEnv, dir) // after startNode, which sets one of its own
	groupKey := n.symmetricGroup(t, "line-9")
	cfg := deviceclient.Config{ServerURL: n.srv.URL(), RegistrationID: "meter/../x", Credentials: deviceclient.Credentials{GroupKey: groupKey}, RootCAs: n.roots}
	path, err := deviceclient.DefaultStorePath("default", "meter/../x")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(filepath.Dir(path)) != dir {
		t.Fatalf("DefaultStorePath = %s, want a file two levels under %s", path, dir)
	}
	if p, _ := deviceclient.DefaultStorePath("..", ".."); filepath.Dir(filepath.Dir(p)) != dir {
		t.Errorf("DefaultStorePath(.., ..) = %s, outside %s", p, dir)
	}
	c, err := deviceclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Provision(context.Background())
	// The registration ID is not a valid one: the server refuses it, and
	// nothing is stored.
	if err == nil {
		t.Fatal("provisioned with an invalid registration ID")
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after a refused registration, %s: %v; want no file", path, err)
	}
	cfg.RegistrationID = "meter-7"
	if c, err = deviceclient.New(cfg); err != nil {
		t.Fatal(err)
	}
	id, err := c.Provision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	path, _ = deviceclient.DefaultStorePath("default", "meter-7")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file %s: %v; want mode 0600", path, err)
	}
	c2, _ := deviceclient.New(cfg)
	again, err := c2.Provision(context.Background())
	if err != nil || again.CertificatePEM != id.CertificatePEM {
		t.Fatalf("second boot: got a different identity (err %v)", err)
	}

	// The same registration ID against another server registers there:
	// the stored identity is the first server's.
	other := startNode(t)
	t.Setenv(deviceclient.StateDirEnv, dir) // the same directory, where meter-7's identity is
	cfg.ServerURL, cfg.RootCAs = other.srv.URL(), other.roots
	cfg.Credentials = deviceclient.Credentials{GroupKey: other.symmetricGroup(t, "line-9")}
	c3, _ := deviceclient.New(cfg)
	there, err := c3.Provision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if there.CertificatePEM == id.CertificatePEM || there.Server != other.srv.URL() {
		t.Errorf("another server: got the first server's identity back (server %q)", there.Server)
	}
	if _, err := other.srv.Registry().GetDevice(context.Background(), other.p, "default", "meter-7"); err != nil {
		t.Errorf("the other server has no device meter-7: %v", err)
	}
}
