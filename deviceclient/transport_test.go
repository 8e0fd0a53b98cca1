package deviceclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/deviceclient"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

// factoryCA is a device maker's CA, enrolled as an X.509 group.
type factoryCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newFactoryCA(tb testing.TB) *factoryCA {
	tb.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Maker Root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &factoryCA{cert: cert, key: key}
}

func (ca *factoryCA) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))
}

// device is a factory certificate for regID (CN) with its key, chain included.
func (ca *factoryCA) device(tb testing.TB, regID string) *tls.Certificate {
	tb.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: regID},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}
}

// verifyIdentity checks that id's certificate chains to the installation
// root through id's chain, names the device, and is for id's key.
func verifyIdentity(t *testing.T, n *node, id *deviceclient.Identity, regID string) {
	t.Helper()
	if id.DeviceID != regID || id.CertificatePEM == "" || id.KeyPEM == "" || id.ChainPEM == "" {
		t.Fatalf("identity: device %q (want %q), certificate %v, key %v, chain %v",
			id.DeviceID, regID, id.CertificatePEM != "", id.KeyPEM != "", id.ChainPEM != "")
	}
	block, _ := pem.Decode([]byte(id.CertificatePEM))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM([]byte(id.ChainPEM))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: n.roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued certificate does not verify to the installation root: %v", err)
	}
	if leaf.Subject.CommonName != regID {
		t.Errorf("certificate CN %q, want %q", leaf.Subject.CommonName, regID)
	}
	if _, err := id.TLSCertificate(); err != nil {
		t.Errorf("certificate and key do not pair: %v", err)
	}
}

func (n *node) mqttAddr() string { return n.srv.MQTTAddr().String() }
func (n *node) coapAddr() string { return n.srv.CoAPSAddr().String() }

// TestProvisionMQTTAndCoAP provisions a device over each MQTT and CoAP
// transport, with a key derived from a group key and with a factory
// certificate, and a CSR; checks the certificate and the stored identity;
// renews (over EST-coaps sren for CoAP devices, whose configuration names
// no HTTPS protocol).
func TestProvisionMQTTAndCoAP(t *testing.T) {
	n := startNode(t)
	groupKey := n.symmetricGroup(t, "line-1")
	maker := newFactoryCA(t)
	n.enroll(t, registry.EnrollmentCreate{ID: "maker", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestX509, Certificate: maker.pem(), Verified: true},
		Credentials: gatehouse.CredentialPolicy{Certificate: gatehouse.CertRequired}})
	tok := n.enroll(t, registry.EnrollmentCreate{ID: "boot", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, MaxUses: 100},
		Credentials: gatehouse.CredentialPolicy{Certificate: gatehouse.CertRequired}}).Attestation.Token

	for _, tc := range []struct {
		proto deviceclient.Protocol
		creds string // key, token, cert
	}{
		{deviceclient.DPSMQTT, "key"},
		{deviceclient.DPSMQTT, "cert"},
		{deviceclient.NativeMQTT, "key"},
		{deviceclient.NativeMQTT, "token"},
		{deviceclient.NativeMQTT, "cert"},
		{deviceclient.CoAP, "key"},
		{deviceclient.CoAP, "cert"},
		{deviceclient.ESTCoAP, "key"},
		{deviceclient.ESTCoAP, "cert"},
	} {
		name := string(tc.proto) + "-" + tc.creds
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			regID := "dev-" + name
			var creds deviceclient.Credentials
			switch tc.creds {
			case "key":
				creds.GroupKey = groupKey
			case "token":
				creds.BootstrapToken = tok
			case "cert":
				creds.FactoryCertificate = maker.device(t, regID)
			}
			store := deviceclient.FileStore{Path: filepath.Join(t.TempDir(), "identity.json")}
			cfg := deviceclient.Config{ServerURL: n.srv.URL(), RegistrationID: regID, Protocol: tc.proto,
				Credentials: creds, RootCAs: n.roots, Store: store, MQTTAddr: n.mqttAddr(), CoAPAddr: n.coapAddr(),
				Retry: deviceclient.Retry{Attempts: 1}}
			c, err := deviceclient.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			id, err := c.Provision(ctx)
			if err != nil {
				t.Fatalf("provision: %v", err)
			}
			verifyIdentity(t, n, id, regID)
			if id.Protocol != tc.proto {
				t.Errorf("identity protocol %q, want %q", id.Protocol, tc.proto)
			}
			stored, err := store.Load(ctx)
			if err != nil || stored.CertificatePEM != id.CertificatePEM || stored.KeyPEM != id.KeyPEM || stored.Protocol != tc.proto {
				t.Fatalf("stored identity differs from the one returned (err %v)", err)
			}
			dev, err := n.srv.Registry().GetDevice(ctx, n.p, "default", regID)
			if err != nil || dev.ID != regID {
				t.Fatalf("the registry has no device %q: %v", regID, err)
			}

			later := id.NotBefore.Add(id.NotAfter.Sub(id.NotBefore) * 2 / 3).Add(time.Minute)
			cfg.Now = func() time.Time { return later }
			c2, _ := deviceclient.New(cfg)
			renewed, err := c2.RenewIfDue(ctx)
			if err != nil {
				t.Fatalf("renew: %v", err)
			}
			if renewed.CertificatePEM == id.CertificatePEM || renewed.RenewedAt.IsZero() || renewed.DeviceID != regID {
				t.Fatalf("renew: certificate unchanged or device changed (%q)", renewed.DeviceID)
			}
			verifyIdentity(t, n, renewed, regID)
		})
	}
}

// closedTCP and closedUDP are loopback addresses nothing listens on.
func closedTCP(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func closedUDP(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

type fallbacks struct {
	mu   sync.Mutex
	hops []string
	errs []error
}

func (f *fallbacks) record(from, to deviceclient.Protocol, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hops = append(f.hops, string(from)+">"+string(to))
	f.errs = append(f.errs, err)
}

// With MQTT's and CoAP's ports closed, the device onboards over the next
// protocol in its order, HTTPS, at once (no backoff: the fallback is not a
// retry).
func TestFallbackToNextProtocol(t *testing.T) {
	n := startNode(t)
	groupKey := n.symmetricGroup(t, "line-1")
	var fb fallbacks
	var retries int
	store := &deviceclient.MemoryStore{}
	c, err := deviceclient.New(deviceclient.Config{ServerURL: n.srv.URL(), RegistrationID: "dev-fallback", RootCAs: n.roots,
		Protocols:   []deviceclient.Protocol{deviceclient.DPSMQTT, deviceclient.CoAP, deviceclient.Native},
		Credentials: deviceclient.Credentials{GroupKey: groupKey}, Store: store,
		MQTTAddr: closedTCP(t), CoAPAddr: closedUDP(t), ConnectTimeout: 3 * time.Second,
		OnRetry: func(error, time.Duration) { retries++ }, OnFallback: fb.record})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	id, err := c.Provision(context.Background())
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	verifyIdentity(t, n, id, "dev-fallback")
	if id.Protocol != deviceclient.Native {
		t.Errorf("provisioned over %q, want native", id.Protocol)
	}
	if want := []string{"dps-mqtt>coap", "coap>native"}; !slices.Equal(fb.hops, want) {
		t.Errorf("fallbacks %q, want %q", fb.hops, want)
	}
	for _, err := range fb.errs {
		var e *deviceclient.Error
		if !errors.As(err, &e) || e.Status != 0 || e.Code != "transport" {
			t.Errorf("fallback on %v, want a transport error", err)
		}
	}
	if retries != 0 {
		t.Errorf("%d retries, want none: each protocol was tried once", retries)
	}
	t.Logf("onboarded over native after closed MQTT and CoAP ports in %v", time.Since(start))
	if stored, err := store.Load(context.Background()); err != nil || stored.Protocol != deviceclient.Native {
		t.Errorf("stored identity: %v, %+v", err, stored)
	}
}

// A refusal stops at the protocol that refused: a wrong key is not tried
// over the next protocol, nor retried.
func TestRefusalDoesNotFallThrough(t *testing.T) {
	n := startNode(t)
	n.symmetricGroup(t, "line-1")
	for _, first := range []deviceclient.Protocol{deviceclient.DPSMQTT, deviceclient.NativeMQTT, deviceclient.CoAP, deviceclient.ESTCoAP} {
		t.Run(string(first), func(t *testing.T) {
			var fb fallbacks
			var retries int
			c, err := deviceclient.New(deviceclient.Config{ServerURL: n.srv.URL(), RegistrationID: "dev-wrong-" + string(first), RootCAs: n.roots,
				Protocols:   []deviceclient.Protocol{first, deviceclient.Native},
				Credentials: deviceclient.Credentials{GroupKey: []byte("not the group key")},
				MQTTAddr:    n.mqttAddr(), CoAPAddr: n.coapAddr(), ConnectTimeout: 5 * time.Second,
				OnRetry: func(error, time.Duration) { retries++ }, OnFallback: fb.record})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Provision(context.Background())
			var e *deviceclient.Error
			if !errors.As(err, &e) || e.Status != 401 || e.Protocol != first {
				t.Fatalf("got %v, want a 401 over %s", err, first)
			}
			t.Logf("fallback errors: %v", fb.errs)
			if deviceclient.IsRetryable(err) || retries != 0 || len(fb.hops) != 0 {
				t.Fatalf("a refusal was retried %d times or fell through %q", retries, fb.hops)
			}
			if strings.Contains(err.Error(), "not the group key") {
				t.Errorf("the error shows the key: %v", err)
			}
		})
	}
}

// A 429 does not fall through either: the server is there and asks the
// device to wait, over whichever protocol. The round ends; the retry waits
// at least the Retry-After.
func TestRateLimitDoesNotFallThrough(t *testing.T) {
	n := startNodeWith(t, &server.RateLimits{PerSource: 0.001, SourceBurst: 1, PerID: 1e6, IDBurst: 1e6})
	groupKey := n.symmetricGroup(t, "line-1")
	cfg := deviceclient.Config{ServerURL: n.srv.URL(), RootCAs: n.roots,
		Protocols:   []deviceclient.Protocol{deviceclient.Native, deviceclient.CoAP},
		Credentials: deviceclient.Credentials{GroupKey: groupKey}, MQTTAddr: n.mqttAddr(), CoAPAddr: n.coapAddr(),
		Retry: deviceclient.Retry{Attempts: 2, Initial: time.Millisecond, Max: time.Millisecond}}
	cfg.RegistrationID = "dev-first"
	first, _ := deviceclient.New(cfg)
	if _, err := first.Provision(context.Background()); err != nil {
		t.Fatalf("the first device, within the burst: %v", err)
	}

	var fb fallbacks
	var waits []time.Duration
	cfg.RegistrationID, cfg.OnFallback = "dev-second", fb.record
	cfg.OnRetry = func(_ error, d time.Duration) { waits = append(waits, d) }
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	second, _ := deviceclient.New(cfg)
	_, err := second.Provision(ctx)
	var e *deviceclient.Error
	if !errors.As(err, &e) || e.Status != 429 || e.Protocol != deviceclient.Native || e.RetryAfter <= 0 {
		t.Fatalf("got %v, want 429 over native with a Retry-After", err)
	}
	if len(fb.hops) != 0 {
		t.Errorf("a 429 fell through: %q", fb.hops)
	}
	if len(waits) != 1 || waits[0] < e.RetryAfter {
		t.Errorf("retry waits %v, want one of at least the Retry-After %v", waits, e.RetryAfter)
	}
}
