package deviceclient_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/deviceclient"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// TestSessionReports provisions devices, connects them to the broker with
// their operational certificate or (no certificate issued) a SAS token of
// their derived key, reads the configuration the broker sends and reports
// properties: the registry holds them and has seen the device.
func TestSessionReports(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	for _, policy := range []gatehouse.CertificatePolicy{gatehouse.CertNone, gatehouse.CertRequired} {
		t.Run(string(policy), func(t *testing.T) {
			e := n.enroll(t, registry.EnrollmentCreate{ID: "sess-" + string(policy), Type: gatehouse.EnrollmentGroup,
				Attestation:   gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey},
				Credentials:   gatehouse.CredentialPolicy{Certificate: policy},
				InitialConfig: json.RawMessage(`{"interval":30}`)})
			groupKey, _ := base64.StdEncoding.DecodeString(e.Attestation.PrimaryKey)
			c, err := deviceclient.New(deviceclient.Config{ServerURL: n.srv.URL(), RegistrationID: "meter-" + string(policy),
				EnrollmentID: e.ID, Credentials: deviceclient.Credentials{GroupKey: groupKey}, RootCAs: n.roots,
				MQTTAddr: n.srv.MQTTAddr().String()})
			if err != nil {
				t.Fatal(err)
			}
			id, err := c.Provision(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if (id.CertificatePEM != "") != (policy == gatehouse.CertRequired) {
				t.Fatalf("identity holds a certificate: %v, with policy %s", id.CertificatePEM != "", policy)
			}
			s, err := c.Connect(ctx, id)
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer s.Close()
			cfg, err := s.Config(ctx)
			if err != nil || string(cfg) != `{"interval":30}` {
				t.Fatalf("Config: %s, %v; want the enrollment's initial config", cfg, err)
			}
			if err := s.Report(ctx, map[string]any{"firmware": "1.4.2", "battery": 87}); err != nil {
				t.Fatalf("Report: %v", err)
			}
			// Acknowledged means stored: read it back at once.
			d, err := n.srv.Registry().GetDevice(ctx, n.p, "default", id.DeviceID)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(d.Reported, &got); err != nil || got["firmware"] != "1.4.2" || got["battery"] != 87.0 {
				t.Errorf("reported properties in the registry: %s (%v)", d.Reported, err)
			}
		})
	}
}

// TestSessionFollowsAssignedHub: the session goes to the hub the
// registration assigned (here the node's broker, named as the enrollment's
// endpoint), not to Config.MQTTAddr, which points nowhere; Config.HubAddr
// overrides both.
func TestSessionFollowsAssignedHub(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	e := n.enroll(t, registry.EnrollmentCreate{ID: "hubbed", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey},
		Allocation:  gatehouse.Allocation{Endpoints: []gatehouse.Endpoint{{Host: n.srv.MQTTAddr().String()}}}})
	groupKey, _ := base64.StdEncoding.DecodeString(e.Attestation.PrimaryKey)
	nowhere := closedTCP(t)
	cfg := deviceclient.Config{ServerURL: n.srv.URL(), RegistrationID: "hubbed-1", EnrollmentID: e.ID,
		Credentials: deviceclient.Credentials{GroupKey: groupKey}, RootCAs: n.roots, MQTTAddr: nowhere,
		Store: &deviceclient.MemoryStore{}, ConnectTimeout: 3 * time.Second, Retry: deviceclient.Retry{Attempts: 1}}
	c, err := deviceclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Provision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id.AssignedHub != n.srv.MQTTAddr().String() {
		t.Fatalf("assigned hub %q, want %q", id.AssignedHub, n.srv.MQTTAddr())
	}
	s, err := c.Connect(ctx, id)
	if err != nil {
		t.Fatalf("Connect to the assigned hub: %v", err)
	}
	s.Close()

	cfg.HubAddr = nowhere
	c, err = deviceclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.Connect(ctx, id); err == nil {
		s.Close()
		t.Error("Connect with HubAddr pointing nowhere succeeded: HubAddr was not used")
	}
}

// TestSessionRefusalIsNotRetried: a device an operator disabled is refused
// at CONNECT, once, with a permanent error.
func TestSessionRefusalIsNotRetried(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	groupKey := n.symmetricGroup(t, "line-2")
	var retries atomic.Int32
	c, err := deviceclient.New(deviceclient.Config{ServerURL: n.srv.URL(), RegistrationID: "pump-1",
		Credentials: deviceclient.Credentials{GroupKey: groupKey}, RootCAs: n.roots, MQTTAddr: n.srv.MQTTAddr().String(),
		Retry:   deviceclient.Retry{Attempts: 4, Initial: time.Millisecond},
		OnRetry: func(error, time.Duration) { retries.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Provision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.Registry().SetState(ctx, n.p, "default", id.DeviceID, gatehouse.StateInactive, "test", ""); err != nil {
		t.Fatal(err)
	}
	_, err = c.Connect(ctx, id)
	var de *deviceclient.Error
	if !errors.As(err, &de) || de.Retryable() || retries.Load() != 0 {
		t.Fatalf("Connect as a disabled device: %v (retries %d); want one permanent *Error", err, retries.Load())
	}
}

// TestSessionConfigLatest: configuration changes made while the device is
// not reading reach it in order, and Config ends at the latest. (The
// broker coalesces changes, so this does not overflow the session's queue;
// TestMailboxKeepsNewest does.)
func TestSessionConfigLatest(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	groupKey := n.symmetricGroup(t, "line-3")
	c, err := deviceclient.New(deviceclient.Config{ServerURL: n.srv.URL(), RegistrationID: "valve-1",
		Credentials: deviceclient.Credentials{GroupKey: groupKey}, RootCAs: n.roots, MQTTAddr: n.srv.MQTTAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Provision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Connect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const changes = 40
	for v := 1; v <= changes; v++ {
		patch := &gatehouse.DevicePatch{Config: json.RawMessage(fmt.Sprintf(`{"v":%d}`, v))}
		if _, err := n.srv.Registry().PatchDevice(ctx, n.p, "default", id.DeviceID, patch, ""); err != nil {
			t.Fatal(err)
		}
	}
	last := -1
	deadline := time.Now().Add(20 * time.Second)
	for last != changes && time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		cfg, err := s.Config(cctx)
		cancel()
		if err != nil {
			t.Fatalf("Config after %d: %v", last, err)
		}
		var got struct{ V int }
		if err := json.Unmarshal(cfg, &got); err != nil {
			t.Fatalf("config %s: %v", cfg, err)
		}
		if got.V < last {
			t.Fatalf("Config went back from version %d to %d", last, got.V)
		}
		last = got.V
	}
	if last != changes {
		t.Fatalf("the latest configuration never came: last %d, want %d", last, changes)
	}
}
