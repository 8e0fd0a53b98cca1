package ca_test

import (
	"context"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"time"

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
