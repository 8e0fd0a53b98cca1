package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// sslTool runs openssl in a directory.
type sslTool struct {
	t   *testing.T
	dir string
}

func newSSL(t *testing.T) *sslTool {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl not in PATH (scripts/test installs it)")
	}
	return &sslTool{t: t, dir: t.TempDir()}
}

// run runs openssl and returns its combined output and whether it succeeded.
func (s *sslTool) run(args ...string) (string, bool) {
	s.t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = s.dir
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// ok runs openssl and fails the test unless it succeeds.
func (s *sslTool) ok(args ...string) string {
	s.t.Helper()
	out, ok := s.run(args...)
	if !ok {
		s.t.Fatalf("openssl %s failed:\n%s", strings.Join(args, " "), out)
	}
	return out
}

func (s *sslTool) path(name string) string { return filepath.Join(s.dir, name) }

func (s *sslTool) write(name string, data []byte) string {
	s.t.Helper()
	if err := os.WriteFile(s.path(name), data, 0o600); err != nil {
		s.t.Fatal(err)
	}
	return s.path(name)
}

func (s *sslTool) read(name string) []byte {
	s.t.Helper()
	b, err := os.ReadFile(s.path(name))
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// csr makes a P-256 key and a CSR for it with openssl.
func (s *sslTool) csr(name string) string {
	s.t.Helper()
	s.ok("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", name+".key", "-subj", "/CN=chosen-by-device", "-out", name+".csr")
	return s.path(name + ".csr")
}

// serial returns a certificate's serial as openssl prints it (upper-case hex).
func (s *sslTool) serial(certFile string) string {
	s.t.Helper()
	out := s.ok("x509", "-in", certFile, "-noout", "-serial")
	return strings.TrimSpace(strings.TrimPrefix(out, "serial="))
}

// crlText fetches the scope's CRL with the CLI (over HTTPS), checks its
// signature against chain with openssl, and returns openssl's text of it.
func (s *sslTool) crlText(n *node, scope, chain string) string {
	s.t.Helper()
	file := s.path("crl-" + scope + ".der")
	n.ok("crl", "--scope", scope, "--out", file)
	if out := s.ok("crl", "-inform", "DER", "-in", file, "-CAfile", chain, "-noout"); !strings.Contains(out, "verify OK") {
		s.t.Errorf("openssl crl -CAfile: %q, want verify OK", out)
	}
	return s.ok("crl", "-inform", "DER", "-in", file, "-noout", "-text")
}

// api is a plain HTTPS client of the node, as a script or broker would use.
type api struct {
	t     *testing.T
	hc    *http.Client
	base  string
	token string
}

func newAPI(t *testing.T, n *node) *api {
	t.Helper()
	pool := x509.NewCertPool()
	b, err := os.ReadFile(filepath.Join(n.dir, "ca.pem"))
	if err != nil || !pool.AppendCertsFromPEM(b) {
		t.Fatalf("read ca.pem: %v", err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(hc.CloseIdleConnections)
	return &api{t: t, hc: hc, base: n.srv.URL(), token: n.adminToken()}
}

// do sends a request; token may be empty for public endpoints.
func (a *api) do(method, path, token, contentType string, body []byte) (int, http.Header, []byte) {
	a.t.Helper()
	req, err := http.NewRequestWithContext(a.t.Context(), method, a.base+path, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return res.StatusCode, res.Header, b
}

// issue issues a certificate over HTTP.
func (a *api) issue(scope, device string, csr []byte) (int, []byte) {
	a.t.Helper()
	body, _ := json.Marshal(map[string]string{"csr": string(csr)})
	status, _, b := a.do("POST", "/v1/scopes/"+scope+"/devices/"+device+"/certificates", a.token, "application/json", body)
	return status, b
}

// problemCode returns the code of a problem body.
func problemCode(b []byte) string {
	var p struct{ Code string }
	json.Unmarshal(b, &p)
	return p.Code
}

// TestCertificateLifecycle drives real tools end to end: openssl makes the
// keys and CSRs and checks every certificate, CRL and OCSP answer the server
// gives, over HTTPS, while the CLI and plain HTTP do the issuing.
func TestCertificateLifecycle(t *testing.T) {
	ssl := newSSL(t)
	n := startNode(t)
	h := newAPI(t, n)
	n.ok("device", "create", "sensor-1")
	n.ok("device", "create", "sensor-2")

	// The scope's chain, from the CLI.
	chain := ssl.write("chain.pem", []byte(n.ok("ca", "show")))
	ssl.ok("x509", "-in", chain, "-out", "issuing.pem") // the first certificate: the issuing CA
	issuing := ssl.path("issuing.pem")
	status, hdr, body := h.do("GET", "/v1/scopes/default/ca", h.token, "", nil)
	if status != 200 || hdr.Get("Content-Type") != "application/pem-certificate-chain" || string(body) != string(ssl.read("chain.pem")) {
		t.Errorf("GET /ca over HTTP: %d %q, differs from ca show", status, hdr.Get("Content-Type"))
	}

	// Issue with the CLI; openssl verifies it against the chain.
	leaf := ssl.path("leaf.pem")
	r := n.gh("cert", "issue", "--device", "sensor-1", "--csr", ssl.csr("dev1"), "--out", leaf)
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "Wrote certificate") {
		t.Fatalf("cert issue --out: %+v", r)
	}
	if out := ssl.ok("verify", "-CAfile", chain, leaf); !strings.Contains(out, "leaf.pem: OK") {
		t.Errorf("openssl verify: %q", out)
	}
	if out := ssl.ok("x509", "-in", leaf, "-noout", "-subject"); !regexp.MustCompile(`CN\s*=\s*sensor-1\s*$`).MatchString(out) {
		t.Errorf("subject %q, want CN = sensor-1 (the device ID, not the CSR's CN)", out)
	}
	if out := ssl.ok("x509", "-in", leaf, "-noout", "-text"); !strings.Contains(out, "URI:urn:gatehouse:default:sensor-1") {
		t.Errorf("certificate text lacks URI:urn:gatehouse:default:sensor-1:\n%s", out)
	}
	serial1 := ssl.serial(leaf)

	// Issue over plain HTTP; the answer's certificate verifies as well.
	status, b := h.issue("default", "sensor-2", ssl.read(filepath.Base(ssl.csr("dev2"))))
	if status != 201 {
		t.Fatalf("POST certificates: %d %s", status, b)
	}
	var ic registry.IssuedCertificate
	if err := json.Unmarshal(b, &ic); err != nil {
		t.Fatal(err)
	}
	leaf2 := ssl.write("leaf2.pem", []byte(ic.Certificate))
	ssl.write("answer-chain.pem", []byte(ic.Chain))
	if out := ssl.ok("verify", "-CAfile", ssl.path("answer-chain.pem"), leaf2); !strings.Contains(out, "OK") {
		t.Errorf("openssl verify with the answer's chain: %q", out)
	}
	if !strings.EqualFold(strings.TrimLeft(ssl.serial(leaf2), "0"), ic.Serial) {
		t.Errorf("serial %s, answer says %s", ssl.serial(leaf2), ic.Serial)
	}

	// A CSR with a flipped signature byte: refused by CLI and HTTP alike.
	block, _ := pem.Decode(ssl.read("dev1.csr"))
	block.Bytes[len(block.Bytes)-3] ^= 0x01
	bad := ssl.write("bad.csr", pem.EncodeToMemory(block))
	if out, ok := ssl.run("req", "-in", bad, "-noout", "-verify"); ok && !strings.Contains(out, "fail") {
		t.Errorf("openssl accepts the tampered CSR: %s", out)
	}
	r = n.gh("cert", "issue", "--device", "sensor-1", "--csr", bad)
	if r.code != 1 || !strings.HasSuffix(r.stderr, "(csr_invalid)\n") || r.stdout != "" {
		t.Errorf("cert issue with a tampered CSR: %+v", r)
	}
	if status, b := h.issue("default", "sensor-1", ssl.read("bad.csr")); status != 400 || problemCode(b) != gatehouse.ECSRInvalid {
		t.Errorf("POST certificates with a tampered CSR: %d %s", status, b)
	}

	// OCSP before revocation: openssl builds the request, the server
	// answers over HTTPS, openssl checks the answer.
	ssl.ok("ocsp", "-issuer", issuing, "-cert", leaf, "-reqout", "req.der", "-no_nonce")
	ocspStatus := func() string {
		t.Helper()
		status, hdr, b := h.do("POST", "/v1/scopes/default/ocsp", "", "application/ocsp-request", ssl.read("req.der"))
		if status != 200 || hdr.Get("Content-Type") != "application/ocsp-response" {
			t.Fatalf("POST ocsp: %d %q %s", status, hdr.Get("Content-Type"), b)
		}
		ssl.write("resp.der", b)
		out := ssl.ok("ocsp", "-respin", "resp.der", "-issuer", issuing, "-CAfile", chain, "-cert", leaf)
		if !strings.Contains(out, "Response verify OK") {
			t.Errorf("openssl ocsp -respin: %s", out)
		}
		return out
	}
	if out := ocspStatus(); !strings.Contains(out, "leaf.pem: good") {
		t.Errorf("OCSP before revocation:\n%s", out)
	}
	// openssl's own client, straight to the responder over HTTPS.
	if out, ok := ssl.run("ocsp", "-issuer", issuing, "-cert", leaf, "-url", n.srv.URL()+"/v1/scopes/default/ocsp", "-CAfile", chain, "-no_nonce"); !ok || !strings.Contains(out, "leaf.pem: good") {
		t.Errorf("openssl ocsp -url https://...:\n%s", out)
	}

	// Revoke with the CLI, by the serial as openssl prints it.
	r = n.gh("cert", "revoke", serial1, "--reason", "keyCompromise")
	if r.code != 0 || !regexp.MustCompile(`(?m)^[0-9a-f]+\s+sensor-1\s+x509\s+revoked\s+`+ts+`\s+`+ts+`\s+keyCompromise$`).MatchString(r.stdout) {
		t.Errorf("cert revoke: %+v", r)
	}
	crl := ssl.crlText(n, "default", chain)
	if !strings.Contains(crl, "Serial Number: "+serial1) || !strings.Contains(crl, "Key Compromise") {
		t.Errorf("the CRL does not list %s for key compromise:\n%s", serial1, crl)
	}
	if strings.Contains(crl, ssl.serial(leaf2)) {
		t.Errorf("the CRL lists %s, which is not revoked", ssl.serial(leaf2))
	}
	if out := ocspStatus(); !strings.Contains(out, "leaf.pem: revoked") || !strings.Contains(out, "Reason: keyCompromise") {
		t.Errorf("OCSP after revocation:\n%s", out)
	}
	// The CRL is public, in PEM too.
	status, hdr, b = h.do("GET", "/v1/scopes/default/crl?format=pem", "", "", nil)
	pemCRL := ssl.write("crl.pem", b)
	if status != 200 || !strings.HasPrefix(string(b), "-----BEGIN X509 CRL-----") {
		t.Errorf("GET crl?format=pem without a token: %d %q %.40s", status, hdr.Get("Content-Type"), b)
	} else if out := ssl.ok("crl", "-in", pemCRL, "-noout", "-text"); !strings.Contains(out, serial1) {
		t.Errorf("PEM CRL lacks %s", serial1)
	}
	if r := n.gh("crl", "--pem"); r.code != 0 || !strings.HasPrefix(r.stdout, "-----BEGIN X509 CRL-----") {
		t.Errorf("crl --pem: %+v", r)
	}
	// It needs no token at all.
	r = ghEnv(t, map[string]string{envServer: n.srv.URL(), envCAFile: filepath.Join(n.dir, "ca.pem"), envDataDir: t.TempDir()}, "crl", "--pem")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "-----BEGIN X509 CRL-----") {
		t.Errorf("crl without a token: %+v", r)
	}

	// Bad input, each with its code.
	ssl.write("garbage.csr", []byte("-----BEGIN CERTIFICATE REQUEST-----\nnot base64!\n-----END CERTIFICATE REQUEST-----\n"))
	ssl.write("big.csr", bytes.Repeat([]byte("A"), 17<<10))
	for _, tc := range []struct {
		args []string
		code string
	}{
		{[]string{"cert", "issue", "--device", "sensor-1", "--csr", ssl.path("garbage.csr")}, gatehouse.EInvalidPEM},
		{[]string{"cert", "issue", "--device", "sensor-1", "--csr", leaf}, gatehouse.EInvalidPEM},
		{[]string{"cert", "issue", "--device", "sensor-1", "--csr", ssl.path("big.csr")}, gatehouse.ETooLarge},
		{[]string{"cert", "issue", "--device", "nope", "--csr", ssl.path("dev1.csr")}, gatehouse.ENotFound},
		{[]string{"cert", "revoke", "abcdef0123"}, gatehouse.ENotFound},
		{[]string{"cert", "revoke", "not-hex"}, gatehouse.EInvalid},
		{[]string{"cert", "revoke", ic.Serial, "--reason", "boredom"}, gatehouse.EInvalid},
		{[]string{"cert", "revoke", serial1}, gatehouse.EAlreadyRevoked},
		{[]string{"cert", "list", "--status", "happy"}, gatehouse.EInvalid},
		{[]string{"scope", "set-policy", "--cert-validity", "10m"}, gatehouse.EInvalid},
		{[]string{"ca", "import", "--cert", leaf, "--key", ssl.path("dev1.key")}, gatehouse.EInvalidCA},
		{[]string{"ca", "import", "--cert", ssl.path("dev1.key"), "--key", ssl.path("dev1.key")}, gatehouse.EInvalidPEM},
	} {
		r := n.gh(tc.args...)
		if r.code != 1 || !strings.HasSuffix(r.stderr, "("+tc.code+")\n") {
			t.Errorf("gatehouse %s: %+v, want exit 1 and (%s)", strings.Join(tc.args, " "), r, tc.code)
		}
	}

	// Another scope's CA does not vouch for this scope's certificates.
	n.ok("scope", "create", "other")
	other := ssl.write("other.pem", []byte(n.ok("ca", "show", "--scope", "other")))
	if out, ok := ssl.run("verify", "-partial_chain", "-CAfile", other, leaf2); ok || strings.Contains(out, ": OK") {
		t.Errorf("openssl verify -partial_chain with scope other's chain: %s", out)
	}

	// Renewal: a second certificate for sensor-2; both listed, and the
	// event log says renewed.
	leaf3 := ssl.path("leaf3.pem")
	var ic3 registry.IssuedCertificate
	n.okJSON(&ic3, "cert", "issue", "--device", "sensor-2", "--csr", ssl.csr("dev3"), "--out", leaf3)
	if string(ssl.read("leaf3.pem")) != ic3.Certificate || ic3.Serial == "" || ic3.Chain == "" {
		t.Errorf("cert issue -o json --out: %+v", ic3)
	}
	var creds struct{ Items []gatehouse.Credential }
	n.okJSON(&creds, "device", "credentials", "sensor-2")
	var serials []string
	for _, c := range creds.Items {
		serials = append(serials, c.Serial)
	}
	if len(serials) != 2 || !slices.Contains(serials, ic.Serial) || !slices.Contains(serials, ic3.Serial) {
		t.Errorf("device credentials sensor-2 = %q, want %s and %s", serials, ic.Serial, ic3.Serial)
	}
	if out := n.ok("events", "--limit", "1000"); !strings.Contains(out, gatehouse.EventCredentialRenewed) {
		t.Errorf("no %s event:\n%s", gatehouse.EventCredentialRenewed, out)
	}
	wantRows(t, "device credentials", n.ok("device", "credentials", "sensor-2"),
		`ID\s+DEVICE\s+KIND\s+STATUS\s+NOT AFTER\s+REVOKED\s+REASON`,
		`[0-9a-f]+\s+sensor-2\s+x509\s+active\s+`+ts+`\s+-\s+-`,
		`[0-9a-f]+\s+sensor-2\s+x509\s+active\s+`+ts+`\s+-\s+-`)
	// One credential revoked by ID under its device.
	r = n.gh("device", "revoke-credential", "sensor-2", ic3.Serial, "--reason", "superseded")
	if r.code != 0 || !regexp.MustCompile(`(?m)^`+ic3.Serial+`\s+sensor-2\s+x509\s+revoked\s+`+ts+`\s+`+ts+`\s+superseded$`).MatchString(r.stdout) {
		t.Errorf("device revoke-credential: %+v", r)
	}
	if r = n.gh("device", "revoke-credential", "sensor-1", ic.Serial); r.code != 1 || !strings.HasSuffix(r.stderr, "("+gatehouse.ENotFound+")\n") {
		t.Errorf("device revoke-credential of another device's certificate: %+v", r)
	}

	// Decommissioning revokes the device's certificates: the CRL lists them.
	n.ok("device", "set-state", "sensor-2", "decommissioned", "--reason", "end of life")
	crl = ssl.crlText(n, "default", chain)
	for _, f := range []string{leaf2, leaf3} {
		if s := ssl.serial(f); !strings.Contains(crl, "Serial Number: "+s) {
			t.Errorf("the CRL after decommissioning lacks %s:\n%s", s, crl)
		}
	}
	if !strings.Contains(crl, "Cessation Of Operation") {
		t.Errorf("the CRL gives no cessationOfOperation reason:\n%s", crl)
	}
	r = n.gh("cert", "issue", "--device", "sensor-2", "--csr", ssl.path("dev3.csr"))
	if r.code != 1 || !strings.HasSuffix(r.stderr, "(credential_refused)\n") {
		t.Errorf("cert issue to a decommissioned device: %+v", r)
	}
}

// TestCertCommands covers the CLI's listing, policy and CA commands.
func TestCertCommands(t *testing.T) {
	ssl := newSSL(t)
	n := startNode(t)
	n.ok("device", "create", "s-1")

	// ca show: PEM by default, a description with -o table or json.
	if out := n.ok("ca", "show"); strings.Count(out, "-----BEGIN CERTIFICATE-----") != 2 {
		t.Errorf("ca show:\n%s", out)
	}
	wantRows(t, "ca show -o table", n.ok("ca", "show", "-o", "table"),
		`Scope:\s+default`, `Subject:\s+CN=Gatehouse default Issuing CA,O=Gatehouse`, `Issuer:\s+CN=Gatehouse Installation Root CA,O=Gatehouse`,
		`Not before:\s+`+ts, `Not after:\s+`+ts, `Thumbprint:\s+[0-9a-f]{64}`, `Imported:\s+false`, `Chain:\s+2 certificates.*`)
	var info registry.CAInfo
	n.okJSON(&info, "ca", "show")
	if info.Scope != "default" || info.Imported || strings.Count(info.Chain, "BEGIN CERTIFICATE") != 2 {
		t.Errorf("ca show -o json = %+v", info)
	}

	// scope set-policy keeps what it is not told.
	wantRows(t, "scope set-policy", n.ok("scope", "set-policy", "--cert-validity", "30d"),
		`Scope:\s+default`, `Cert validity:\s+30d`, `Renewal overlap:\s+1d`, `Expiry lead time:\s+14d`,
		`MQTT topics:\s+devices/\{deviceId\}/# \(default\)`)
	var sc gatehouse.Scope
	n.okJSON(&sc, "scope", "set-policy", "--renewal-overlap", "36h", "--expiry-lead", "7d")
	if want := (gatehouse.ScopePolicy{CertValidity: gatehouse.Duration(30 * 24 * time.Hour), RenewalOverlap: gatehouse.Duration(36 * time.Hour),
		ExpiryLeadTime: gatehouse.Duration(7 * 24 * time.Hour)}); sc.Policy != want {
		t.Errorf("policy %+v, want %+v", sc.Policy, want)
	}
	// MQTT topic templates: set, kept by a later change, refused when
	// invalid (exit 2, naming the flag), and back to the default.
	wantRows(t, "scope set-policy --mqtt-topic-template", n.ok("scope", "set-policy", "--mqtt-topic-template", "fleet/{scope}/{deviceId}/#",
		"--mqtt-topic-template", "devices/{deviceId}/#"),
		`Scope:\s+default`, `Cert validity:\s+30d`, `Renewal overlap:\s+36h0m0s`, `Expiry lead time:\s+7d`,
		`MQTT topics:\s+fleet/\{scope\}/\{deviceId\}/#, devices/\{deviceId\}/#`)
	n.okJSON(&sc, "scope", "set-policy", "--cert-validity", "30d")
	if sc.Policy.MQTT == nil || strings.Join(sc.Policy.MQTT.TopicTemplates, " ") != "fleet/{scope}/{deviceId}/# devices/{deviceId}/#" {
		t.Errorf("templates after another change: %+v, want them kept", sc.Policy.MQTT)
	}
	for _, bad := range []string{"fleet/+/{deviceId}", "fleet/{device}/#", "$SYS/{deviceId}"} {
		if r := n.gh("scope", "set-policy", "--mqtt-topic-template", bad); r.code != 2 || !strings.Contains(r.stderr, "--mqtt-topic-template") {
			t.Errorf("set-policy --mqtt-topic-template %q: exit %d, stderr %q; want 2 naming the flag", bad, r.code, r.stderr)
		}
	}
	sc = gatehouse.Scope{} // decoding leaves members the answer omits
	n.okJSON(&sc, "scope", "set-policy", "--mqtt-default-topics")
	if sc.Policy.MQTT != nil {
		t.Errorf("after --mqtt-default-topics: %+v, want no MQTT policy", sc.Policy.MQTT)
	}
	leaf := n.ok("cert", "issue", "--device", "s-1", "--csr", ssl.csr("s1"))
	ssl.write("s1.pem", []byte(leaf))
	// -checkend exits 1 when the certificate will expire within the time.
	if out, _ := ssl.run("x509", "-in", "s1.pem", "-noout", "-checkend", "2592000"); !strings.Contains(out, "will expire") {
		t.Errorf("a 30d certificate outlives 30 days: %s", out)
	}
	if out := ssl.ok("x509", "-in", "s1.pem", "-noout", "-checkend", "2505600"); !strings.Contains(out, "will not expire") {
		t.Errorf("a 30d certificate expires within 29 days: %s", out)
	}

	// cert list: --expiring is relative to now.
	serials := func(args ...string) string {
		t.Helper()
		var page registry.CredentialPage
		n.okJSON(&page, append([]string{"cert", "list"}, args...)...)
		var s []string
		for _, c := range page.Items {
			s = append(s, c.DeviceID+"/"+string(c.Status))
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "s-1/active"},
		{[]string{"--expiring", "31d"}, "s-1/active"},
		{[]string{"--expiring", "29d"}, ""},
		{[]string{"--expiring", time.Now().Add(40 * 24 * time.Hour).UTC().Format(time.RFC3339)}, "s-1/active"},
		{[]string{"--device", "s-1", "--status", "active", "--kind", "x509"}, "s-1/active"},
		{[]string{"--status", "revoked"}, ""},
		{[]string{"--all", "--limit", "1"}, "s-1/active"},
	} {
		if got := serials(tc.args...); got != tc.want {
			t.Errorf("cert list %s = %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
	wantRows(t, "cert list", n.ok("cert", "list", "--expiring", "30d"),
		`ID\s+DEVICE\s+KIND\s+STATUS\s+NOT AFTER\s+REVOKED\s+REASON`,
		`[0-9a-f]+\s+s-1\s+x509\s+active\s+`+ts+`\s+-\s+-`)

	// ca import: an operator CA made with openssl.
	ssl.ok("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "root.key", "-out", "root.pem",
		"-subj", "/CN=Operator Root", "-days", "3650",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", "subjectKeyIdentifier=hash")
	ssl.ok("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "issuing.key", "-out", "issuing.csr", "-subj", "/CN=Operator Issuing CA")
	ssl.write("ext.cnf", []byte("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"))
	ssl.ok("x509", "-req", "-in", "issuing.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial", "-days", "1825", "-extfile", "ext.cnf", "-out", "issuing.pem")
	wantRows(t, "ca import", n.ok("ca", "import", "--cert", ssl.path("issuing.pem"), "--key", ssl.path("issuing.key"), "--chain", ssl.path("root.pem")),
		`Scope:\s+default`, `Subject:\s+CN=Operator Issuing CA`, `Issuer:\s+CN=Operator Root`,
		`Not before:\s+`+ts, `Not after:\s+`+ts, `Thumbprint:\s+[0-9a-f]{64}`, `Imported:\s+true`, `Chain:\s+2 certificates.*`)
	newLeaf := ssl.path("s1-new.pem")
	n.ok("cert", "issue", "--device", "s-1", "--csr", ssl.path("s1.csr"), "--out", newLeaf)
	if out := ssl.ok("verify", "-CAfile", ssl.path("root.pem"), "-untrusted", ssl.path("issuing.pem"), newLeaf); !strings.Contains(out, "OK") {
		t.Errorf("a certificate issued after the import does not verify against the operator's CA: %s", out)
	}
	if out, ok := ssl.run("verify", "-CAfile", ssl.path("root.pem"), "-untrusted", ssl.path("issuing.pem"), ssl.path("s1.pem")); ok {
		t.Errorf("a certificate of the previous CA verifies against the operator's: %s", out)
	}
	ssl.write("chain-now.pem", []byte(n.ok("ca", "show")))
	ssl.crlText(n, "default", ssl.path("chain-now.pem")) // signed by the imported CA

	// Usage errors.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"cert", "issue", "--csr", "x.csr"}, `required flag(s) "device" not set`},
		{[]string{"cert", "issue", "--device", "s-1", "--csr", "/does/not/exist.csr"}, "--csr: stat /does/not/exist.csr"},
		{[]string{"cert", "revoke"}, "missing SERIAL"},
		{[]string{"cert", "list", "--expiring", "soon"}, `--expiring "soon"`},
		{[]string{"ca", "import", "--cert", "x"}, `required flag(s) "key" not set`},
		{[]string{"scope", "set-policy"}, "nothing to change"},
		{[]string{"scope", "set-policy", "--cert-validity", "forever"}, `--cert-validity "forever"`},
		{[]string{"crl", "extra"}, "unknown command"},
	} {
		r := n.gh(tt.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("gatehouse %s: %+v, want exit 2 and %q", strings.Join(tt.args, " "), r, tt.want)
		}
	}
}
