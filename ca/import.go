package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// Import limits: generous for a CA certificate, a key and a few
// intermediates, small enough to parse without concern.
const (
	maxImportPEMSize = 64 << 10
	maxImportChain   = 8
)

// ParseImportedCA makes an Authority of an operator's own CA, to issue a
// scope's device certificates. certPEM holds the CA certificate, keyPEM its
// unencrypted private key (PKCS #8 "PRIVATE KEY", PKCS #1 "RSA PRIVATE KEY"
// or SEC1 "EC PRIVATE KEY"), and chainPEM, optionally, the certificates above
// it, nearest first: intermediates and, last, possibly the operator's root.
//
// The certificate must be a CA allowed to sign certificates and CRLs, valid
// at now, with a subject key identifier and a key CheckPublicKey accepts, and
// the key must be its. Each chain certificate must have signed the one
// before; only the last may be self-signed, and then the whole chain must
// verify as X.509 paths do (path lengths, name constraints).
//
// Errors are ETooLarge, EInvalidPEM, EInvalidCA or EUnsupportedKey; their
// messages never include key material.
func ParseImportedCA(certPEM, keyPEM, chainPEM []byte, now time.Time) (*Authority, error) {
	for _, in := range []struct {
		what string
		data []byte
	}{{"CA certificate", certPEM}, {"CA key", keyPEM}, {"CA chain", chainPEM}} {
		if len(in.data) > maxImportPEMSize {
			return nil, gatehouse.Errorf(gatehouse.ETooLarge, "the %s PEM is %d bytes; the limit is %d", in.what, len(in.data), maxImportPEMSize)
		}
	}
	certs, err := parseCertificatesPEM("CA certificate", certPEM)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the CA certificate PEM holds %d certificates; give the CA certificate alone, and the certificates above it as the chain", len(certs))
	}
	cert := certs[0]
	if err := checkImportedCACert(cert, "the CA certificate", now); err != nil {
		return nil, err
	}
	if err := CheckPublicKey(cert.PublicKey); err != nil {
		return nil, gatehouse.Errorf(gatehouse.EUnsupportedKey, "the CA certificate's key: %s", gatehouse.ErrorMessage(err))
	}
	if len(cert.SubjectKeyId) == 0 {
		return nil, gatehouse.Errorf(gatehouse.EInvalidCA, "the CA certificate has no subject key identifier, which certificates and CRLs it signs must point to; reissue it with one (openssl: subjectKeyIdentifier=hash)")
	}
	if cert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, gatehouse.Errorf(gatehouse.EInvalidCA, "the CA certificate lacks the cRLSign key usage, and Gatehouse publishes a CRL for every scope; reissue it with keyUsage keyCertSign, cRLSign")
	}

	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, gatehouse.Errorf(gatehouse.EInvalidCA, "the private key does not belong to the CA certificate; give the key the certificate was issued for")
	}

	var chain []*x509.Certificate
	if len(bytes.TrimSpace(chainPEM)) > 0 {
		if chain, err = parseCertificatesPEM("CA chain", chainPEM); err != nil {
			return nil, err
		}
	}
	if len(chain) > 0 && isSelfSigned(cert) {
		return nil, gatehouse.Errorf(gatehouse.EInvalidCA, "the CA certificate is self-signed, a root, so nothing is above it; leave the chain empty")
	}
	child := cert
	for i, c := range chain {
		what := "chain certificate " + strconv.Itoa(i+1) + " (" + describe(c) + ")"
		if err := checkImportedCACert(c, what, now); err != nil {
			return nil, err
		}
		if err := child.CheckSignatureFrom(c); err != nil {
			return nil, gatehouse.Errorf(gatehouse.EInvalidCA, "%s did not sign %s; list the chain nearest first: the CA certificate's issuer, then its issuer, and so on", what, describe(child))
		}
		if i < len(chain)-1 && isSelfSigned(c) {
			return nil, gatehouse.Errorf(gatehouse.EInvalidCA, "%s is self-signed, a root, but not last; only the last chain certificate may be a root", what)
		}
		child = c
	}
	if n := len(chain); n > 0 && isSelfSigned(chain[n-1]) {
		roots, inters := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(chain[n-1])
		for _, c := range chain[:n-1] {
			inters.AddCert(c)
		}
		_, err := cert.Verify(x509.VerifyOptions{
			Roots: roots, Intermediates: inters, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			return nil, gatehouse.Errorf(gatehouse.EInvalidCA, "the CA certificate does not verify against the chain's root (%s)", trimPrefix(err.Error()))
		}
	}
	a, err := New(cert, key, chain...)
	if err != nil {
		return nil, gatehouse.Errorf(gatehouse.EInvalidCA, "the CA cannot be used: %s", trimPrefix(err.Error()))
	}
	return a, nil
}

// checkImportedCACert checks what every certificate of an imported CA's
// chain must be: a CA that may sign certificates, valid at now.
func checkImportedCACert(c *x509.Certificate, what string, now time.Time) error {
	switch {
	case !c.BasicConstraintsValid || !c.IsCA:
		return gatehouse.Errorf(gatehouse.EInvalidCA, "%s is not a CA certificate (basicConstraints CA:TRUE is missing)", what)
	case c.KeyUsage&x509.KeyUsageCertSign == 0:
		return gatehouse.Errorf(gatehouse.EInvalidCA, "%s lacks the keyCertSign key usage", what)
	case now.Before(c.NotBefore):
		return gatehouse.Errorf(gatehouse.EInvalidCA, "%s is not valid until %s", what, c.NotBefore.UTC().Format(time.RFC3339))
	case now.After(c.NotAfter):
		return gatehouse.Errorf(gatehouse.EInvalidCA, "%s expired at %s", what, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// parseCertificatesPEM parses a series of PEM CERTIFICATE blocks.
func parseCertificatesPEM(what string, data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(certs) == 0 {
				return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the %s is not PEM; give PEM CERTIFICATE blocks (-----BEGIN CERTIFICATE-----)", what)
			}
			return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the %s has data after certificate %d that is not a PEM block", what, len(certs))
		}
		if block.Type != "CERTIFICATE" {
			return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the %s holds a PEM %q block; give only CERTIFICATE blocks", what, truncate(block.Type, 40))
		}
		if len(certs) == maxImportChain {
			return nil, gatehouse.Errorf(gatehouse.EInvalidCA, "the %s holds more than %d certificates", what, maxImportChain)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, gatehouse.Errorf(gatehouse.EInvalidCA, "certificate %d of the %s does not parse (%s)", len(certs)+1, what, trimPrefix(err.Error()))
		}
		certs = append(certs, c)
		rest = bytes.TrimSpace(rest)
	}
	if len(certs) == 0 {
		return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the %s is empty; give PEM CERTIFICATE blocks", what)
	}
	return certs, nil
}

// parsePrivateKeyPEM parses an unencrypted private key in PEM: PKCS #8,
// PKCS #1 (RSA) or SEC1 (EC), optionally after an EC PARAMETERS block as
// openssl ecparam -genkey writes. Its errors never echo the input.
func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	var found *pem.Block
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the CA key is not PEM, or has data outside its PEM blocks; give one PEM PRIVATE KEY block")
		}
		rest = bytes.TrimSpace(rest)
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "ENCRYPTED PRIVATE KEY":
			return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the CA key is encrypted; decrypt it first (openssl pkey -in key.pem -out plain.pem) and import it over a secure channel")
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
		default:
			return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the CA key holds a PEM %q block; give a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block", truncate(block.Type, 40))
		}
		if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the CA key is encrypted; decrypt it first (openssl pkey -in key.pem -out plain.pem) and import it over a secure channel")
		}
		if found != nil {
			return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the CA key PEM holds more than one private key; give only the CA's")
		}
		found = block
	}
	if found == nil {
		return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the CA key holds no private key; give one PEM PRIVATE KEY block")
	}
	var priv any
	var err error
	switch found.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(found.Bytes)
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(found.Bytes)
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(found.Bytes)
	}
	if err != nil {
		// The parser's message could in principle quote the input; keep
		// it out.
		return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the CA key's %s block does not parse as that kind of key", found.Type)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, gatehouse.Errorf(gatehouse.EUnsupportedKey, "a %T cannot sign; %s", priv, acceptedKeys)
	}
	if err := CheckPublicKey(signer.Public()); err != nil {
		return nil, gatehouse.Errorf(gatehouse.EUnsupportedKey, "the CA key: %s", gatehouse.ErrorMessage(err))
	}
	return signer, nil
}

// describe names a certificate in an error message.
func describe(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return truncate(c.Subject.CommonName, 80)
	}
	return truncate(c.Subject.String(), 80)
}
