package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"github.com/gatehouse-iot/gatehouse/adminclient"
)

// simFactory is the manufacturer's CA of an X.509 fleet: it signs each
// simulated device's factory certificate (CN = registration ID) and the
// proof that verifies the fleet's group enrollment.
type simFactory struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newSimFactory() (*simFactory, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: randomSerial(), Subject: pkix.Name{CommonName: "gatehouse sim factory CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(7 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &simFactory{cert: cert, key: key}, nil
}

func randomSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// certPEM is the factory CA's certificate, for the group enrollment.
func (f *simFactory) certPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.cert.Raw}))
}

// issue makes a certificate with subject CN cn and a fresh P-256 key,
// signed by the factory CA.
func (f *simFactory) issue(cn string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: randomSerial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.cert, key.Public(), f.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// verify proves possession of the factory CA's key to the server, as an
// operator does once per CA: a certificate whose CN is the verification
// code the server gave, signed by the CA.
func (f *simFactory) verify(ctx context.Context, admin *adminclient.Client, scope, enrollmentID string) error {
	code, err := admin.NewVerificationCode(ctx, scope, enrollmentID)
	if err != nil {
		return fmt.Errorf("verification code: %w", err)
	}
	proof, err := f.issue(code)
	if err != nil {
		return err
	}
	if _, err := admin.VerifyCA(ctx, scope, enrollmentID, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proof.Certificate[0]})); err != nil {
		return fmt.Errorf("verify the factory CA: %w", err)
	}
	return nil
}
