package provision_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-iot/gatehouse/provision"
)

// BenchmarkRegister measures provisioning through the service alone (no
// network): SAS attestation with a group-derived key, a new device, and,
// in the csr variant, a certificate signed for the device's CSR. The
// registrations run concurrently, as a fleet's would.
func BenchmarkRegister(b *testing.B) {
	for _, withCSR := range []bool{false, true} {
		name := "sas"
		if withCSR {
			name = "sas+csr"
		}
		b.Run(name, func(b *testing.B) {
			f := newFixture(b, provision.WithRateLimits(1e9, 1<<30, 1e9, 1<<30))
			g := f.enroll(b, `{"id":"g","type":"group","attestation":{"type":"symmetric_key"}}`)
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
			var n atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("bench-%d", n.Add(1))
					req := provision.Request{Scope: "default", RegistrationID: id, SAS: sasFor(b, g.Attestation.PrimaryKey, id, true)}
					if withCSR {
						req.CSR = csr
					}
					if _, err := f.prov.Register(f.ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "registrations/s")
		})
	}
}
