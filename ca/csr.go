package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
)

// CSR limits. A device CSR is a few hundred bytes (an 8192-bit RSA one about
// 2 KiB); the limits leave room for that and nothing like a denial of
// service through the parser.
const (
	MaxCSRSize           = 16 << 10
	maxCSRExtensions     = 20
	maxCSRExtensionBytes = 4 << 10
)

// ParseCSR parses a PKCS #10 certificate signing request from a device, in
// PEM (a CERTIFICATE REQUEST or NEW CERTIFICATE REQUEST block) or DER. It
// checks that the key is one CheckPublicKey accepts and that the CSR's
// signature verifies, so the device holds the key. Everything else in the CSR
// (subject, requested extensions) is ignored at issuance: the CA decides what
// a device certificate says.
//
// Errors are ETooLarge, EInvalidPEM, ECSRInvalid or EUnsupportedKey.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > MaxCSRSize {
		return nil, gatehouse.Errorf(gatehouse.ETooLarge, "the CSR is %d bytes; the limit is %d", len(data), MaxCSRSize)
	}
	der := data
	if trimmed := bytes.TrimSpace(data); len(trimmed) == 0 {
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "the CSR is empty; send a PKCS #10 CSR in PEM or DER")
	} else if bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		block, rest := pem.Decode(trimmed)
		switch {
		case block == nil:
			return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the CSR is not valid PEM; send one CERTIFICATE REQUEST block")
		case block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST":
			return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "got a PEM %q block; send a CERTIFICATE REQUEST block", truncate(block.Type, 40))
		case len(bytes.TrimSpace(rest)) != 0:
			return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the CSR has data after its PEM block; send exactly one CERTIFICATE REQUEST block")
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "the CSR is not a valid PKCS #10 request (%s); create it with, for example, openssl req -new", trimPrefix(err.Error()))
	}
	if n := len(csr.Extensions); n > maxCSRExtensions {
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "the CSR has %d extensions; the limit is %d, and Gatehouse ignores them anyway", n, maxCSRExtensions)
	}
	size := 0
	for _, ext := range csr.Extensions {
		size += len(ext.Value)
	}
	if size > maxCSRExtensionBytes {
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "the CSR's extensions hold %d bytes; the limit is %d, and Gatehouse ignores them anyway", size, maxCSRExtensionBytes)
	}
	// The key first: it is cheap to check, and an oversized RSA key should
	// not cost a signature verification.
	if err := CheckPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "the CSR's signature does not verify; sign the CSR with the private key it names, using SHA-256 or stronger")
	}
	return csr, nil
}

// trimPrefix drops the "x509: " that crypto/x509 puts before its messages.
func trimPrefix(msg string) string {
	return truncate(strings.TrimPrefix(msg, "x509: "), 120)
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
