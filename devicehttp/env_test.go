package devicehttp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/provision"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/secret"
	"github.com/gatehouse-iot/gatehouse/store/sqlite"
)

// The provisioning core is what production passes to New.
var _ Provisioner = (*provision.Service)(nil)

// env is the device handler on a real TLS listener (client certificates
// requested, not verified, as the server configures it), over the real
// stack: SQLite, keyring, installation CA, registry, provisioning core.
type env struct {
	t     testing.TB
	srv   *httptest.Server
	st    *sqlite.Store
	reg   *registry.Service
	prov  *provision.Service
	admin *gatehouse.Principal
	root  *ca.Authority
	roots *x509.CertPool // trusts the server certificate
	logs  *syncBuffer
	// caFile is the installation root in PEM, for curl --cacert.
	caFile string
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t testing.TB, opts ...Option) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "gh.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	kr, err := secret.NewKeyring(key)
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	root, err := ca.LoadOrCreateInstallationCA(ctx, st, kr, time.Now)
	if err != nil {
		t.Fatalf("installation CA: %v", err)
	}
	reg := registry.New(st, registry.WithCA(root, kr))
	if err := reg.EnsureScope(ctx, gatehouse.DefaultScope); err != nil {
		t.Fatalf("ensure default scope: %v", err)
	}
	g, err := reg.CreateGlobalAdminToken(ctx, "admin")
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	admin, err := reg.Authenticate(ctx, g.Secret)
	if err != nil {
		t.Fatalf("authenticate admin: %v", err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prov := provision.New(st, reg, provision.WithLogger(logger))
	srv := httptest.NewUnstartedServer(New(prov, append([]Option{WithLogger(logger)}, opts...)...))
	cert, err := root.IssueServerCertificate([]string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	srv.TLS = ca.ServerTLSConfig(cert)
	srv.TLS.ClientAuth = tls.RequestClientCert
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(root.Certificate())
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pemCert(root.Certificate().Raw), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, st: st, reg: reg, prov: prov, admin: admin, root: root, roots: roots, logs: logs, caFile: caFile}
	t.Cleanup(e.checkLogs)
	return e
}

// checkLogs fails the test if a secret reached the log.
func (e *env) checkLogs() {
	logs := e.logs.String()
	for _, secret := range []string{"SharedAccessSignature", "sig=", "Authorization", "Bootstrap ", "Basic "} {
		if strings.Contains(logs, secret) {
			e.t.Errorf("the log contains %q:\n%s", secret, logs)
		}
	}
}

// client returns an HTTPS client that trusts the server and presents
// chain (DER, leaf first) with key as its client certificate, if given.
// Each client has its own connections, so the certificate is per client.
func (e *env) client(key any, chain ...[]byte) *http.Client {
	cfg := &tls.Config{RootCAs: e.roots}
	if len(chain) > 0 {
		c := &tls.Certificate{Certificate: chain, PrivateKey: key}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c, nil }
	}
	tr := &http.Transport{TLSClientConfig: cfg, MaxConnsPerHost: 64, MaxIdleConnsPerHost: 64}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// resp is a response read in full.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r *resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request with body and headers (name, value pairs).
func (e *env) do(c *http.Client, method, path string, body []byte, hdr ...string) *resp {
	e.t.Helper()
	r, err := e.try(c, method, path, body, hdr...)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (e *env) try(c *http.Client, method, path string, body []byte, hdr ...string) (*resp, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c == nil {
		c = e.client(nil)
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	return &resp{status: res.StatusCode, header: res.Header, body: b}, nil
}

// enroll creates an enrollment in the default scope as the global admin.
func (e *env) enroll(c registry.EnrollmentCreate) *gatehouse.Enrollment {
	e.t.Helper()
	en, err := e.reg.CreateEnrollment(context.Background(), e.admin, gatehouse.DefaultScope, c)
	if err != nil {
		e.t.Fatalf("create enrollment %s: %v", c.ID, err)
	}
	return en
}

// devices returns the IDs of the devices in the default scope.
func (e *env) devices() []string {
	e.t.Helper()
	page, err := e.reg.ListDevices(context.Background(), e.admin, gatehouse.DefaultScope, registry.DeviceQuery{Limit: 1000})
	if err != nil {
		e.t.Fatalf("list devices: %v", err)
	}
	var ids []string
	for _, d := range page.Items {
		ids = append(ids, d.ID)
	}
	return ids
}

// deriveDeviceKey is the DPS group key derivation, written out as
// PROTOCOLS.md gives it: base64(HMAC-SHA256(base64decode(groupKey), regId)).
func deriveDeviceKey(t testing.TB, groupKey, registrationID string) string {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(groupKey)
	if err != nil {
		t.Fatalf("group key: %v", err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(registrationID))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// sasToken builds a DPS SAS token the way the Azure SDKs do: the resource
// URL-encoded (C, C#, Java, Python) unless raw (Node sends it as is), the
// signature over "{sr}\n{se}" with the base64-decoded device key,
// URL-encoded in the token, skn after se.
func sasToken(t testing.TB, deviceKey, scope, registrationID string, expiry time.Time, raw bool) string {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(deviceKey)
	if err != nil {
		t.Fatalf("device key: %v", err)
	}
	sr := scope + "/registrations/" + registrationID
	if !raw {
		sr = url.QueryEscape(sr)
	}
	se := strconv.FormatInt(expiry.Unix(), 10)
	m := hmac.New(sha256.New, k)
	m.Write([]byte(sr + "\n" + se))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(m.Sum(nil)))
	return "SharedAccessSignature sr=" + sr + "&sig=" + sig + "&se=" + se + "&skn=registration"
}

// testCA is a certificate authority of a device maker, outside Gatehouse.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRootCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

func (a *testCA) intermediate(t testing.TB, cn string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

// leaf issues a device (client) certificate with the registration ID as CN.
func (a *testCA) leaf(t testing.TB, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func (a *testCA) pem() string { return string(pemCert(a.cert.Raw)) }

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// newCSR returns a DER PKCS #10 request for key.
func newCSR(t testing.TB, key *ecdsa.PrivateKey, cn string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func csrPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func jsonBody(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }
