package coapapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/attest"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

type env struct {
	t     testing.TB
	srv   *server.Server
	admin *adminclient.Client
	addr  string
	dir   string
	roots *x509.CertPool // the installation root, which signs the server's certificate
}

func startEnv(t testing.TB, cfg server.Config) *env {
	t.Helper()
	dir := t.TempDir()
	cfg.DataDir, cfg.HTTPAddr = dir, "127.0.0.1:0"
	if cfg.CoAPSAddr == "" {
		cfg.CoAPSAddr = "127.0.0.1:0"
	}
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	tok, err := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := adminclient.New(srv.URL(), strings.TrimSpace(string(tok)), adminclient.WithCAFile(filepath.Join(dir, server.CAFile)))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, server.CAFile))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return &env{t: t, srv: srv, admin: admin, addr: srv.CoAPSAddr().String(), dir: dir, roots: roots}
}

func (e *env) enroll(body string) *gatehouse.Enrollment {
	e.t.Helper()
	var req registry.EnrollmentCreate
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		e.t.Fatal(err)
	}
	en, err := e.admin.CreateEnrollment(context.Background(), "default", req)
	if err != nil {
		e.t.Fatalf("create enrollment: %v", err)
	}
	return en
}

func deviceKey(t testing.TB, groupKeyB64, regID string) []byte {
	k, err := base64.StdEncoding.DecodeString(groupKeyB64)
	if err != nil {
		t.Fatal(err)
	}
	return attest.DeriveDeviceKey(k, regID)
}

func dialPSK(t testing.TB, addr, identity string, key []byte, suites ...piondtls.CipherSuiteID) (*udpClient.Conn, error) {
	t.Helper()
	if len(suites) == 0 {
		suites = []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8}
	}
	cfg := &piondtls.Config{
		PSK:             func([]byte) ([]byte, error) { return key, nil },
		PSKIdentityHint: []byte(identity),
		CipherSuites:    suites,
	}
	return dialDTLS(t, addr, cfg)
}

// dialDTLS shakes hands within 3 s, then wraps the session in a CoAP client.
// (Left to go-coap, a failed handshake blocks its reader for pion's own,
// much longer, timeout.)
func dialDTLS(t testing.TB, addr string, cfg *piondtls.Config) (*udpClient.Conn, error) {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, err
	}
	dc, err := piondtls.Client(pc, raddr, cfg) //nolint:staticcheck
	if err != nil {
		pc.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err != nil {
		dc.Close()
		pc.Close()
		return nil, err
	}
	cc := dtls.Client(dc, options.WithBlockwise(true, blockwise.SZX1024, 10*time.Second))
	t.Cleanup(func() { cc.Close(); pc.Close() })
	return cc, nil
}

func (e *env) dialCert(cert tls.Certificate) (*udpClient.Conn, error) {
	cfg := &piondtls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      e.roots,
		ServerName:   "localhost",
		CipherSuites: []piondtls.CipherSuiteID{piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	}
	return dialDTLS(e.t, e.addr, cfg)
}

func ctx5(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// do sends a request and returns the response code and payload.
func do(t testing.TB, cc *udpClient.Conn, code codes.Code, path string, cf message.MediaType, body []byte, set ...func(*pool.Message)) (codes.Code, []byte, *pool.Message) {
	t.Helper()
	ctx := ctx5(t)
	var req *pool.Message
	var err error
	if code == codes.GET {
		req, err = cc.NewGetRequest(ctx, path)
	} else {
		req, err = cc.NewPostRequest(ctx, path, cf, bytes.NewReader(body))
		req.SetCode(code)
		if cf == 0xffff {
			req.Remove(message.ContentFormat)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range set {
		f(req)
	}
	resp, err := cc.Do(req)
	if err != nil {
		t.Fatalf("%v %s: %v", code, path, err)
	}
	b, _ := resp.ReadBody()
	return resp.Code(), b, resp
}

func newCSR(t testing.TB, cn string) ([]byte, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

// parsePKCS7 extracts the certificates of a certs-only PKCS #7 with the
// standard library only (asn1): ContentInfo{oid, [0]{SignedData{..., [0] certs}}}.
func parsePKCS7(t testing.TB, der []byte) []*x509.Certificate {
	t.Helper()
	var ci struct {
		OID     asn1ObjectIdentifier
		Content asn1RawValue `asn1:"explicit,tag:0"`
	}
	if _, err := asn1Unmarshal(der, &ci); err != nil {
		t.Fatalf("pkcs7: %v", err)
	}
	var sd struct {
		Version      int
		Digests      asn1RawValue
		Encap        asn1RawValue
		Certificates asn1RawValue `asn1:"optional,tag:0"`
		Signers      asn1RawValue
	}
	if _, err := asn1Unmarshal(ci.Content.Bytes, &sd); err != nil {
		t.Fatalf("signed data: %v", err)
	}
	certs, err := x509.ParseCertificates(sd.Certificates.Bytes)
	if err != nil || len(certs) == 0 {
		t.Fatalf("certificates: %v (%d)", err, len(certs))
	}
	return certs
}

func verifyChain(t testing.TB, leaf *x509.Certificate, chain []*x509.Certificate) {
	t.Helper()
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(chain[len(chain)-1])
	for _, c := range chain[:len(chain)-1] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued certificate does not verify: %v", err)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Log("no openssl: chain checked with x509.Verify only")
		return
	}
	dir := t.TempDir()
	write := func(name string, certs ...*x509.Certificate) string {
		var b []byte
		for _, c := range certs {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	args := []string{"verify", "-purpose", "sslclient", "-CAfile", write("root.pem", chain[len(chain)-1])}
	if len(chain) > 1 {
		args = append(args, "-untrusted", write("inter.pem", chain[:len(chain)-1]...))
	}
	out, err := exec.Command("openssl", append(args, write("leaf.pem", leaf))...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Errorf("openssl verify: %v: %s", err, out)
	}
}

func TestPSKProvisioningObserveReport(t *testing.T) {
	e := startEnv(t, server.Config{})
	g := e.enroll(`{"id":"line-1","type":"group","attestation":{"type":"symmetric_key"},"initialConfig":{"rate":5}}`)
	key := deviceKey(t, g.Attestation.PrimaryKey, "dev-1")
	cc, err := dialPSK(t, e.addr, "default/dev-1", key)
	if err != nil {
		t.Fatal(err)
	}

	code, body, _ := do(t, cc, codes.GET, "/.well-known/core", 0, nil)
	if code != codes.Content || !strings.Contains(string(body), `</.well-known/est/crts>;rt="ace.est.crts"`) || !strings.Contains(string(body), "</cfg>") {
		t.Fatalf("discovery: %v %s", code, body)
	}
	code, body, _ = do(t, cc, codes.GET, "/.well-known/core", 0, nil, func(m *pool.Message) { m.AddQuery("rt=ace.est.s*") })
	if code != codes.Content || strings.Count(string(body), "<") != 2 {
		t.Errorf("discovery rt=ace.est.s*: %s", body)
	}

	// crts: the chain is larger than one 1024-byte block.
	code, body, resp := do(t, cc, codes.GET, "/.well-known/est/crts", 0, nil)
	if cf, _ := resp.ContentFormat(); code != codes.Content || cf != 281 {
		t.Fatalf("crts: %v cf %d", code, cf)
	}
	if len(body) <= 1024 {
		t.Logf("crts is %d bytes: block-wise transfer not exercised", len(body))
	}
	chain := parsePKCS7(t, body)
	if len(chain) != 2 {
		t.Errorf("crts holds %d certificates, want 2 (issuing CA, root)", len(chain))
	}
	want, _ := e.srv.Registry().ScopeAuthority(context.Background(), "default")
	if !chain[0].Equal(want.Certificate()) {
		t.Errorf("crts[0] is not the scope's issuing CA")
	}

	// sen: a certificate that verifies against crts, with x509 and openssl.
	csr, devKey := newCSR(t, "anything")
	code, body, resp = do(t, cc, codes.POST, "/.well-known/est/sen", 286, csr)
	if cf, _ := resp.ContentFormat(); code != codes.Changed || cf != 281 {
		t.Fatalf("sen: %v cf %d: %s", code, cf, body)
	}
	leaf := parsePKCS7(t, body)[0]
	if leaf.Subject.CommonName != "dev-1" {
		t.Errorf("issued CN %q", leaf.Subject.CommonName)
	}
	verifyChain(t, leaf, chain)
	// 287: the bare certificate.
	csr2, _ := newCSR(t, "x")
	code, body, _ = do(t, cc, codes.POST, "/.well-known/est/sen", 286, csr2, func(m *pool.Message) { m.SetAccept(287) })
	if _, err := x509.ParseCertificate(body); code != codes.Changed || err != nil {
		t.Errorf("sen 287: %v %v", code, err)
	}

	// Native provisioning, CBOR in and out.
	csr3, _ := newCSR(t, "x")
	req, _ := cbor.Marshal(map[string]any{"csr": csr3, "payload": map[string]any{"model": "m1"}})
	code, body, _ = do(t, cc, codes.POST, "/prov", message.AppCBOR, req)
	if code != codes.Changed {
		t.Fatalf("prov: %v %s", code, body)
	}
	var pr struct {
		DeviceID    string         `cbor:"deviceId"`
		Status      string         `cbor:"status"`
		Certificate []byte         `cbor:"certificate"`
		Chain       [][]byte       `cbor:"chain"`
		Config      map[string]any `cbor:"config"`
	}
	if err := cbor.Unmarshal(body, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.DeviceID != "dev-1" || pr.Status != "assigned" || len(pr.Chain) != 2 || pr.Config["rate"] != uint64(5) {
		t.Errorf("prov response: %+v", pr)
	}
	// JSON too.
	code, body, _ = do(t, cc, codes.POST, "/prov", message.AppJSON, []byte(`{"payload":{"a":1}}`), func(m *pool.Message) { m.SetAccept(message.AppJSON) })
	if code != codes.Changed || !strings.Contains(string(body), `"deviceId":"dev-1"`) {
		t.Errorf("prov json: %v %s", code, body)
	}

	// Observe the configuration; a PATCH reaches the observer.
	notes := make(chan map[string]any, 8)
	obs, err := cc.Observe(ctx5(t), "/cfg", func(m *pool.Message) {
		b, _ := m.ReadBody()
		var v map[string]any
		if cbor.Unmarshal(b, &v) == nil {
			notes <- v
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Cancel(context.Background())
	if v := wait(t, notes); v["rate"] != uint64(5) {
		t.Errorf("first notification %v", v)
	}
	if _, err := e.admin.PatchDevice(context.Background(), "default", "dev-1", json.RawMessage(`{"config":{"rate":7}}`), ""); err != nil {
		t.Fatal(err)
	}
	if v := wait(t, notes); v["rate"] != uint64(7) {
		t.Errorf("notification after PATCH %v", v)
	}

	// Reported properties, CBOR; presence activates the device.
	rep, _ := cbor.Marshal(map[string]any{"fw": "1.2", "battery": 87})
	if code, body, _ := do(t, cc, codes.POST, "/rep", message.AppCBOR, rep); code != codes.Changed {
		t.Fatalf("rep: %v %s", code, body)
	}
	if code, body, _ := do(t, cc, codes.POST, "/rep", message.AppJSONMergePatch, []byte(`{"battery":null}`)); code != codes.Changed {
		t.Fatalf("rep merge patch: %v %s", code, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := e.admin.GetDevice(context.Background(), "default", "dev-1")
		if err != nil {
			t.Fatal(err)
		}
		if string(d.Reported) == `{"fw":"1.2"}` && d.State == gatehouse.StateActive && d.Connection.LastSeen != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device after reports: state %s reported %s lastSeen %v", d.State, d.Reported, d.Connection.LastSeen)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The operational certificate from sen works over DTLS with certificates.
	cert := tls.Certificate{Certificate: [][]byte{leaf.Raw, chain[0].Raw}, PrivateKey: devKey, Leaf: leaf}
	cc2, err := e.dialCert(cert)
	if err != nil {
		t.Fatalf("certificate handshake: %v", err)
	}
	if code, body, _ := do(t, cc2, codes.GET, "/cfg", 0, nil); code != codes.Content {
		t.Fatalf("cfg over certificate: %v %s", code, body)
	}
	// sren renews it; then revocation stops the old one at once.
	csr4, _ := newCSR(t, "x")
	code, body, _ = do(t, cc2, codes.POST, "/.well-known/est/sren", 286, csr4)
	if code != codes.Changed {
		t.Fatalf("sren: %v %s", code, body)
	}
	verifyChain(t, parsePKCS7(t, body)[0], chain)
	if _, err := e.admin.RevokeCertificate(context.Background(), "default", leaf.SerialNumber.Text(16), "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := do(t, cc2, codes.GET, "/cfg", 0, nil); code != codes.Unauthorized {
		t.Errorf("cfg over a revoked certificate: %v, want 4.01", code)
	}

	// Revoking the device's symmetric key stops the PSK session that is
	// still open at its next request.
	if code, _, _ := do(t, cc, codes.GET, "/cfg", 0, nil); code != codes.Content {
		t.Fatalf("cfg over PSK before the key's revocation: %v", code)
	}
	creds, err := e.admin.DeviceCredentials(context.Background(), "default", "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	revoked := false
	for _, c := range creds {
		if c.Kind == gatehouse.CredentialSymmetricKey {
			if _, err := e.admin.RevokeCredential(context.Background(), "default", "dev-1", c.ID, "keyCompromise"); err != nil {
				t.Fatal(err)
			}
			revoked = true
		}
	}
	if !revoked {
		t.Fatal("dev-1 has no symmetric-key credential")
	}
	if code, _, _ := do(t, cc, codes.GET, "/cfg", 0, nil); code != codes.Unauthorized {
		t.Errorf("cfg over PSK after the key's revocation: %v, want 4.01", code)
	}
}

func wait(t testing.TB, ch chan map[string]any) map[string]any {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
		return nil
	}
}

func TestPSKRefusals(t *testing.T) {
	e := startEnv(t, server.Config{})
	g := e.enroll(`{"id":"line-1","type":"group","attestation":{"type":"symmetric_key"}}`)
	key := deviceKey(t, g.Attestation.PrimaryKey, "dev-1")
	probe := func(identity string, key []byte) string {
		cc, err := dialPSK(t, e.addr, identity, key)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, err = cc.Get(ctx, "/.well-known/core")
		}
		if err == nil {
			return "accepted"
		}
		return err.Error()
	}
	wrongKey := bytes.Repeat([]byte{7}, 32)
	wrong := probe("default/dev-1", wrongKey)
	if wrong == "accepted" {
		t.Fatal("wrong PSK accepted")
	}
	for _, id := range []string{"default/line-9/dev-1", "nosuchscope/dev-1", "not an identity"} {
		if got := probe(id, wrongKey); got != wrong {
			t.Errorf("identity %q: %q; a wrong key gets %q", id, got, wrong)
		}
	}
	if got := probe("default/dev-1", key); got != "accepted" {
		t.Errorf("right key: %s", got)
	}
	// GCM, as libcoap offers it, and ECDHE-PSK.
	for _, s := range []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256, piondtls.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256} {
		cc, err := dialPSK(t, e.addr, "default/dev-1", key, s)
		if err == nil {
			_, err = cc.Get(ctx5(t), "/.well-known/core")
		}
		if err != nil {
			t.Errorf("suite %v: %v", s, err)
		}
	}
}

func dialUDP(addr string) (*udpClient.Conn, error) {
	return udp.Dial(addr)
}
