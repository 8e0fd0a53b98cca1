//go:build unix

package registry_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/gatehouse-iot/gatehouse/store/postgres/pgtest"
	"github.com/gatehouse-iot/gatehouse/store/sqlite"
)

// BenchmarkCommitProvision measures the registry's share of one
// registration, alone: the transaction that creates the device, records
// the issued certificate and the key, counts the enrollment's use, stores
// the registration and appends the events, group-committed on SQLite from
// 64 goroutines at once (batches of 16 and more, as under keep-alive load).
// cpu-us/op is the process's CPU time per registration, the figure that
// counts when the CPUs are saturated; the certificates are made beforehand.
func BenchmarkCommitProvision(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		st, err := sqlite.Open(filepath.Join(b.TempDir(), "gh.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		benchCommitProvision(b, st)
	})
	b.Run("postgres", func(b *testing.B) {
		st, err := postgres.Open(context.Background(), pgtest.NewDatabase(b))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		benchCommitProvision(b, st)
	})
}

func benchCommitProvision(b *testing.B, st gatehouse.Store) {
	ctx := context.Background()
	reg, admin := caNode(b, st)
	if _, err := reg.CreateEnrollment(ctx, admin, gatehouse.DefaultScope, registry.EnrollmentCreate{ID: "line-1", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}, InitialTags: map[string]string{"site": "a"}}); err != nil {
		b.Fatal(err)
	}
	// The certificates come from the scope's CA as in production (its
	// serials, its extensions), all for one device key.
	auth, err := reg.ScopeAuthority(ctx, gatehouse.DefaultScope)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "bench"}}, key)
	if err != nil {
		b.Fatal(err)
	}
	csr, err := ca.ParseCSR(csrDER)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	certs := make([][]byte, b.N)
	for i := range certs {
		if certs[i], err = auth.IssueDeviceCertificate(csr, gatehouse.DefaultScope, fmt.Sprintf("dev-%07d", i), 24*time.Hour, now); err != nil {
			b.Fatal(err)
		}
	}
	// As the attestation would, read the enrollment before the
	// transaction (its counts go stale; its settings do not).
	snapshot, err := st.GetEnrollment(ctx, gatehouse.DefaultScope, "line-1")
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	cpu0 := cpuTime()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			id := fmt.Sprintf("dev-%07d", i)
			if _, err := reg.CommitProvision(ctx, registry.ProvisionCommit{Scope: gatehouse.DefaultScope, RegistrationID: id,
				EnrollmentID: "line-1", DeviceID: id, OperationID: "op-" + id, Dialect: "native",
				ProvedWith: gatehouse.CredentialSymmetricKey, KeySlot: "primary", CertDER: certs[i], Enrollment: snapshot}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
}

// cpuTime is the CPU time, user and system, this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
