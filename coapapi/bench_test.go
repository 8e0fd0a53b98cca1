package coapapi_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/gatehouse-iot/gatehouse/server"
)

// BenchmarkPSKProvisioning measures DTLS-PSK provisioning requests (POST
// /prov, re-provisioning the same devices) per second over established
// sessions, 16 devices in parallel, with and without a CSR to sign.
func BenchmarkPSKProvisioning(b *testing.B) {
	e := startEnv(b, server.Config{RateLimits: &server.RateLimits{PerSource: 1e9, SourceBurst: 1 << 30, PerID: 1e9, IDBurst: 1 << 30}})
	g := e.enroll(`{"id":"line-1","type":"group","attestation":{"type":"symmetric_key"}}`)
	const devices = 16
	conns := make([]*udpClient.Conn, devices)
	for i := range conns {
		id := fmt.Sprintf("bench-%02d", i)
		cc, err := dialPSK(b, e.addr, "default/"+id, deviceKey(b, g.Attestation.PrimaryKey, id))
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = cc
	}
	csr, _ := newCSR(b, "x")
	for _, bc := range []struct {
		name string
		path string
		cf   message.MediaType
		body []byte
	}{
		{"native-no-csr", "/prov", message.AppCBOR, nil},
		{"est-sen-csr", "/.well-known/est/sen", 286, csr},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(max(1, devices/runtime.GOMAXPROCS(0))) // one goroutine per device
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				cc := conns[int(next.Add(1)-1)%devices]
				for pb.Next() {
					if code, body, _ := do(b, cc, codes.POST, bc.path, bc.cf, bc.body); code != codes.Changed {
						b.Errorf("%s: %v %s", bc.path, code, body)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
