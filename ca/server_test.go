package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// leafCertPEM issues a server certificate and returns it in PEM.
func leafCertPEM(t *testing.T) (*x509.Certificate, string) {
	t.Helper()
	a, _, _ := MustInstallationCA(t)
	cert, err := a.IssueServerCertificate([]string{"localhost"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return cert.Leaf, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw}))
}

func TestIssueServerCertificate(t *testing.T) {
	a, _, _ := MustInstallationCA(t)
	hosts := []string{"localhost", "127.0.0.1", "::1", "gatehouse-01", "Gate.Example.COM.", "10.1.2.3", "[fe80::1]", "localhost", ""}
	cert, err := a.IssueServerCertificate(hosts, testNow)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if got, want := len(cert.Certificate), 1; got != want {
		t.Errorf("chain has %d certificates, want %d (leaf only; the root goes out as ca.pem)", got, want)
	}
	if got, want := leaf.DNSNames, []string{"localhost", "gatehouse-01", "gate.example.com"}; !slices.Equal(got, want) {
		t.Errorf("DNSNames = %q, want %q", got, want)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if want := []string{"127.0.0.1", "::1", "10.1.2.3", "fe80::1"}; !slices.Equal(ips, want) {
		t.Errorf("IPAddresses = %q, want %q", ips, want)
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage = %v, want serverAuth", leaf.ExtKeyUsage)
	}
	if got, want := leaf.NotAfter, testNow.Add(ServerCertValidity); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	if string(leaf.AuthorityKeyId) != string(a.Certificate().SubjectKeyId) {
		t.Error("AuthorityKeyId does not name the CA")
	}
	key, ok := cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() || !key.PublicKey.Equal(leaf.PublicKey) {
		t.Errorf("private key %T does not match the leaf", cert.PrivateKey)
	}
	if key.Equal(a.Signer()) {
		t.Error("server certificate reuses the CA key")
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(a.CertPEM())
	for _, h := range []string{"localhost", "127.0.0.1", "::1", "gatehouse-01", "gate.example.com", "10.1.2.3", "fe80::1"} {
		t.Run(h, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{
				DNSName:     h,
				Roots:       roots,
				CurrentTime: testNow.Add(time.Minute),
				KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: roots, CurrentTime: testNow}); err == nil {
		t.Error("verified for a host it was not issued for")
	}
}

func TestIssueServerCertificateErrors(t *testing.T) {
	a, _, _ := MustInstallationCA(t)
	tests := []struct {
		name    string
		hosts   []string
		now     time.Time
		wantErr string
	}{
		{"no hosts", nil, testNow, "no host names"},
		{"only empty", []string{"", " "}, testNow, "no host names"},
		{"host:port", []string{"localhost:8443"}, testNow, "not allowed"},
		{"space", []string{"my host"}, testNow, "not allowed"},
		{"url", []string{"https://x"}, testNow, "not allowed"},
		{"empty label", []string{"a..b"}, testNow, "1-63"},
		{"leading hyphen", []string{"-a.example"}, testNow, "start or end"},
		{"long label", []string{strings.Repeat("a", 64) + ".example"}, testNow, "1-63"},
		{"long name", []string{strings.Repeat("abcdefghi.", 26)}, testNow, "253"},
		{"ip zone", []string{"fe80::1%eth0"}, testNow, "zone"},
		{"wildcard", []string{"*.example.com"}, testNow, "not allowed"},
		{"CA expired", []string{"localhost"}, testNow.Add(11 * 365 * 24 * time.Hour), "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.IssueServerCertificate(tt.hosts, tt.now)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// Near the end of the CA's life a server certificate ends with the CA.
func TestIssueServerCertificateClampedToCA(t *testing.T) {
	a, _, _ := MustInstallationCA(t)
	now := a.Certificate().NotAfter.Add(-30 * 24 * time.Hour)
	cert, err := a.IssueServerCertificate([]string{"localhost"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cert.Leaf.NotAfter, a.Certificate().NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %v, want the CA's %v", got, want)
	}
}

// An issuing CA below the root, as per-scope CAs will be: its server
// certificates carry it as an intermediate and verify against the root.
func TestIssueServerCertificateFromIntermediate(t *testing.T) {
	root, _, _ := MustInstallationCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interCert, err := root.sign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "Gatehouse scope default Issuing CA"},
		NotAfter:              testNow.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, key.Public(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := New(interCert, key, root.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := inter.IssueServerCertificate([]string{"localhost"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(cert.Certificate); got != 2 {
		t.Fatalf("chain has %d certificates, want leaf and intermediate", got)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root.Certificate())
	c, _ := x509.ParseCertificate(cert.Certificate[1])
	inters.AddCert(c)
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: roots, Intermediates: inters, CurrentTime: testNow}); err != nil {
		t.Error(err)
	}
}

func TestNewAuthorityErrors(t *testing.T) {
	root, _, _ := MustInstallationCA(t)
	leaf, _ := leafCertPEM(t)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name    string
		cert    *x509.Certificate
		wantErr string
	}{
		{"leaf", leaf, "not a CA"},
		{"wrong key", root.Certificate(), "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cert, otherKey)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestServerTLSHandshake(t *testing.T) {
	// A real clock here: the TLS client verifies against time.Now.
	a, err := LoadOrCreateInstallationCA(t.Context(), newMemStore(), mustKeyring(t), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := a.IssueServerCertificate([]string{"localhost", "127.0.0.1", "::1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerTLSConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				io.WriteString(c, "hello")
			}()
		}
	}()

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(a.CertPEM()) {
		t.Fatal("CertPEM does not parse")
	}
	tests := []struct {
		name    string
		config  *tls.Config
		wantErr string // substring; "" for success
	}{
		{"TLS 1.3", &tls.Config{RootCAs: roots, ServerName: "localhost"}, ""},
		{"TLS 1.2", &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: tls.VersionTLS12}, ""},
		{"IP name", &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}, ""},
		// MinVersion too: a Go client's default minimum is TLS 1.2, and
		// the server, not the client, must be what refuses.
		{"TLS 1.1", &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, "protocol version not supported"},
		{"TLS 1.0", &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, "protocol version not supported"},
		{"TLS 1.2 CBC only", &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}, "handshake failure"},
		{"TLS 1.2 static RSA only", &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}}, "handshake failure"},
		{"unknown root", &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "localhost"}, "unknown authority"},
		{"wrong name", &tls.Config{RootCAs: roots, ServerName: "example.com"}, "not example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), tt.config)
			if tt.wantErr != "" {
				if err == nil {
					conn.Close()
					t.Fatalf("handshake succeeded, want an error containing %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if got, err := io.ReadAll(conn); err != nil || string(got) != "hello" {
				t.Errorf("read %q, %v; want %q", got, err, "hello")
			}
			st := conn.ConnectionState()
			if st.Version == tls.VersionTLS12 && !slices.Contains(ServerTLSConfig(cert).CipherSuites, st.CipherSuite) {
				t.Errorf("negotiated %s", tls.CipherSuiteName(st.CipherSuite))
			}
			if got := len(st.PeerCertificates); got != 1 {
				t.Errorf("server sent %d certificates, want 1", got)
			}
		})
	}
}

func TestServerTLSConfig(t *testing.T) {
	cfg := ServerTLSConfig(tls.Certificate{})
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
	}
	insecure := map[uint16]bool{}
	for _, s := range tls.InsecureCipherSuites() {
		insecure[s.ID] = true
	}
	for _, id := range cfg.CipherSuites {
		name := tls.CipherSuiteName(id)
		if insecure[id] || !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")) {
			t.Errorf("cipher suite %s is not ECDHE with an AEAD", name)
		}
	}
	if cfg.Renegotiation != tls.RenegotiateNever {
		t.Errorf("Renegotiation = %v", cfg.Renegotiation)
	}
}
