package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// ServerCertValidity is how long a server certificate is valid. Gatehouse
// issues a new one at every start, so this only bounds how long a server may
// run without a restart.
const ServerCertValidity = 365 * 24 * time.Hour

// IssueServerCertificate issues a TLS server certificate for hosts, DNS names
// or IP addresses, with a fresh ECDSA P-256 key that lives only in the
// returned certificate. Empty entries and duplicates are ignored; at least
// one host is needed. The chain holds the leaf and any intermediates, not the
// root: clients get the root from ca.pem.
func (a *Authority) IssueServerCertificate(hosts []string, now time.Time) (tls.Certificate, error) {
	dnsNames, ips, err := parseHosts(hosts)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	var cn string
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	} else {
		cn = ips[0].String()
	}
	leaf, err := a.sign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		NotAfter:              now.Add(ServerCertValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}, key.Public(), now)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	chain := [][]byte{leaf.Raw}
	if !isSelfSigned(a.cert) {
		chain = append(chain, a.cert.Raw)
	}
	for _, c := range a.chain {
		if !isSelfSigned(c) {
			chain = append(chain, c.Raw)
		}
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// parseHosts sorts hosts into DNS names (lowercased, without a trailing dot)
// and IP addresses.
func parseHosts(hosts []string) ([]string, []net.IP, error) {
	var dnsNames []string
	var ips []net.IP
	seen := map[string]bool{}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if addr, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil {
			if addr.Zone() != "" {
				return nil, nil, fmt.Errorf("host %q: an IP address with a zone cannot go in a certificate", h)
			}
			addr = addr.Unmap()
			if !seen[addr.String()] {
				seen[addr.String()] = true
				ips = append(ips, net.IP(addr.AsSlice()))
			}
			continue
		}
		name := strings.TrimSuffix(strings.ToLower(h), ".")
		if err := validateDNSName(name); err != nil {
			return nil, nil, fmt.Errorf("host %q is not an IP address, and %w", h, err)
		}
		if !seen[name] {
			seen[name] = true
			dnsNames = append(dnsNames, name)
		}
	}
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, nil, errors.New("no host names or IP addresses given")
	}
	return dnsNames, ips, nil
}

// validateDNSName checks a lowercased host name: dot-separated labels of
// 1-63 letters, digits, '-' and '_' (seen in real host names), not starting
// or ending with '-', 253 characters at most.
func validateDNSName(name string) error {
	if len(name) > 253 {
		return fmt.Errorf("is not a valid DNS name: longer than 253 characters")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("is not a valid DNS name: each dot-separated label must have 1-63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("is not a valid DNS name: a label may not start or end with '-'")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("is not a valid DNS name: character %q is not allowed; use letters, digits, '-' and '.'", c)
			}
		}
	}
	return nil
}

// ServerTLSConfig returns the TLS configuration of Gatehouse's servers: TLS
// 1.2 or later, and for TLS 1.2 only ECDHE key exchange with AEAD ciphers
// (TLS 1.3 suites are not configurable and all qualify). Go's TLS server
// never accepts renegotiation, so there is nothing to turn off for that.
func ServerTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}
