package registry_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/store/sqlite"
)

// TestScopeCACacheAcrossNodes: two registries on one database, as two
// nodes. The node that imports a CA (or sets the scope's policy) issues with
// it at once; the other keeps its cached copy for at most a second, then
// issues with the new one.
func TestScopeCACacheAcrossNodes(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a, _ := caNode(t, st)
	b, admin := caNode(t, st)
	subject := func(r *registry.Service) string {
		t.Helper()
		auth, err := r.ScopeAuthority(ctx, gatehouse.DefaultScope)
		if err != nil {
			t.Fatal(err)
		}
		return auth.Certificate().Subject.CommonName
	}
	readA := time.Now() // node a's copy is at least this fresh
	old := subject(a)
	if got := subject(b); got != old {
		t.Fatalf("node b issues with %q, node a with %q", got, old)
	}

	certPEM, keyPEM := newImportableCA(t, "Imported Fleet CA")
	if _, err := b.ImportCA(ctx, admin, gatehouse.DefaultScope, registry.CAImport{Certificate: string(certPEM), PrivateKey: string(keyPEM)}); err != nil {
		t.Fatal(err)
	}
	if got := subject(b); got != "Imported Fleet CA" {
		t.Errorf("the importing node issues with %q, want the imported CA at once", got)
	}
	// Asserted only while a's copy is surely not due (a loaded machine may
	// take longer than the interval to get here).
	if time.Since(readA) < 900*time.Millisecond {
		if got := subject(a); got != old {
			t.Errorf("the other node issues with %q within a second of the import, want its cached %q (the recheck interval)", got, old)
		}
	}

	// The issuance policy likewise.
	validity := func(r *registry.Service) time.Duration {
		t.Helper()
		sp, err := r.IssuancePolicy(ctx, gatehouse.DefaultScope)
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(sp.WithDefaults().CertValidity)
	}
	readA = time.Now()
	before := validity(a)
	validity(b)
	want := 7 * 24 * time.Hour
	if _, err := b.SetScopePolicy(ctx, admin, gatehouse.DefaultScope, gatehouse.ScopePolicy{CertValidity: gatehouse.Duration(want)}); err != nil {
		t.Fatal(err)
	}
	if got := validity(b); got != want {
		t.Errorf("the node that set the policy issues for %v, want %v at once", got, want)
	}
	if time.Since(readA) < 900*time.Millisecond {
		if got := validity(a); got != before {
			t.Errorf("the other node issues for %v within a second, want its cached %v", got, before)
		}
	}

	time.Sleep(1100 * time.Millisecond)
	if got := subject(a); got != "Imported Fleet CA" {
		t.Errorf("the other node issues with %q a second after the import, want the imported CA", got)
	}
	if got := validity(a); got != want {
		t.Errorf("the other node issues for %v a second after the change, want %v", got, want)
	}
}

func newImportableCA(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	ski := sha1.Sum(pub)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, SubjectKeyId: ski[:],
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
