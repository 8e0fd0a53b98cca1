package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

// BenchmarkProvisionHTTPS measures registrations over the real HTTPS
// listener with the native dialect (SAS with a group-derived key, new
// device each time), from 16 concurrent clients. keepalive reuses TLS
// connections; fresh-tls makes every registration its own handshake, as
// a fleet of separate devices would.
func BenchmarkProvisionHTTPS(b *testing.B) {
	for _, fresh := range []bool{false, true} {
		name := "keepalive"
		if fresh {
			name = "fresh-tls"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			srv, err := server.Start(context.Background(), server.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0",
				Logger: slog.New(slog.DiscardHandler), RateLimits: &server.RateLimits{PerSource: 1e9, SourceBurst: 1 << 30, PerID: 1e9, IDBurst: 1 << 30}})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			ctx := context.Background()
			tokRaw, _ := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
			p, _ := srv.Registry().Authenticate(ctx, strings.TrimSpace(string(tokRaw)))
			e, err := srv.Registry().CreateEnrollment(ctx, p, "default", registry.EnrollmentCreate{ID: "bench", Type: gatehouse.EnrollmentGroup,
				Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}})
			if err != nil {
				b.Fatal(err)
			}
			groupKey, _ := base64.StdEncoding.DecodeString(e.Attestation.PrimaryKey)
			caPEM, _ := os.ReadFile(filepath.Join(dir, server.CAFile))
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolOf(caPEM)}, DisableKeepAlives: fresh, MaxIdleConnsPerHost: 64}
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("h-%d", n.Add(1))
					m := hmac.New(sha256.New, groupKey)
					m.Write([]byte(id))
					sas := attest.NewSAS(m.Sum(nil), "default/registrations/"+id, time.Now().Add(time.Hour))
					body, _ := json.Marshal(map[string]string{"registrationId": id})
					req, _ := http.NewRequest("POST", srv.URL()+"/device/v1/default/register", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", sas)
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("register: %d", resp.StatusCode)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "registrations/s")
			start := time.Now()
			srv.Close()
			b.Logf("close took %s", time.Since(start))
		})
	}
}

func poolOf(caPEM []byte) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return pool
}
