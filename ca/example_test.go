package ca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/secret"
)

// How a server brings up HTTPS at start. st is the gatehouse.Store.
func ExampleLoadOrCreateInstallationCA() {
	var st ca.SettingStore // the opened gatehouse.Store
	dataDir := "/var/lib/gatehouse"
	ctx := context.Background()

	kr, err := secret.LoadOrCreateMasterKey(filepath.Join(dataDir, "master.key"))
	if err != nil {
		log.Fatal(err)
	}
	authority, err := ca.LoadOrCreateInstallationCA(ctx, st, kr, time.Now)
	if err != nil {
		log.Fatal(err)
	}
	if err := ca.WriteFileAtomic(filepath.Join(dataDir, "ca.pem"), authority.CertPEM(), 0o644); err != nil {
		log.Fatal(err)
	}
	hostname, _ := os.Hostname()
	cert, err := authority.IssueServerCertificate([]string{"localhost", "127.0.0.1", "::1", hostname}, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: ":8443", TLSConfig: ca.ServerTLSConfig(cert)}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}

// How a scope's CA issues a device certificate, with policy as options: a
// modifier (the CRL URL) and a validator of one's own.
func ExampleAuthority_IssueDeviceCertificate() {
	now := time.Now()
	root := exampleRoot(now)
	scopeCA, err := ca.NewScopeCA(root, "plant-7", now)
	if err != nil {
		log.Fatal(err)
	}

	// On the device: a key and a CSR. Its subject does not matter.
	deviceKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, deviceKey)

	// On the server.
	csr, err := ca.ParseCSR(csrDER)
	if err != nil {
		log.Fatal(err) // a *gatehouse.Error: csr_invalid, unsupported_key, ...
	}
	onlyECDSA := func(p *ca.Profile) error {
		if _, ok := p.PublicKey.(*ecdsa.PublicKey); !ok {
			return gatehouse.Errorf(gatehouse.EUnsupportedKey, "scope plant-7 takes ECDSA keys only")
		}
		return nil
	}
	der, err := scopeCA.IssueDeviceCertificate(csr, "plant-7", "sensor-01", 90*24*time.Hour, now,
		ca.WithCRLDistributionPoint("https://gatehouse.example/crl/plant-7.crl"), onlyECDSA)
	if err != nil {
		log.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	fmt.Println(cert.Subject.CommonName, cert.URIs[0])
	scope, deviceID, _ := ca.IdentityFromCertificate(cert)
	fmt.Println(scope, deviceID)
	// Output:
	// sensor-01 urn:gatehouse:plant-7:sensor-01
	// plant-7 sensor-01
}

// exampleRoot stands for the installation root: a self-signed P-256 CA.
func exampleRoot(now time.Time) *ca.Authority {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Example Root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLen: 1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		log.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	root, err := ca.New(cert, key)
	if err != nil {
		log.Fatal(err)
	}
	return root
}
