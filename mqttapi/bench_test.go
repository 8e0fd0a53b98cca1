package mqttapi_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/mqttapi"
	"github.com/gatehouse-iot/gatehouse/provision"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// noProvisioning is a Provisioner for benchmarks that only connect devices.
type noProvisioning struct{}

var errNoProvisioning = gatehouse.Errorf(gatehouse.EUnauthenticated, "no provisioning in this benchmark")

func (noProvisioning) Register(context.Context, provision.Request) (*provision.Result, error) {
	return nil, errNoProvisioning
}
func (noProvisioning) Operation(context.Context, provision.Request, string) (*gatehouse.Registration, *gatehouse.Device, error) {
	return nil, nil, errNoProvisioning
}
func (noProvisioning) Attest(context.Context, provision.Request) error { return errNoProvisioning }
func (noProvisioning) AuthenticateDeviceSAS(context.Context, string, string, string, string) (*gatehouse.Device, error) {
	return nil, errNoProvisioning
}

// benchDevice is a device certificate as PEM (for a client process) and
// parsed.
type benchDevice struct {
	ID      string `json:"id"`
	CertPEM string `json:"cert"`
	KeyPEM  string `json:"key"`
	tls     tls.Certificate
}

// benchFleet starts a node, makes n devices with certificates (one key
// for all: key generation is not what is measured), and a broker over the
// node's registry with no connection rate limit.
func benchFleet(b testing.TB, n int) (*mqttapi.Broker, string, []*benchDevice) {
	b.Helper()
	e := newEnv(b)
	ctx := context.Background()
	reg := e.srv.Registry()
	p, err := reg.Authenticate(ctx, e.token)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := newCSR(b, "x")
	kder, _ := x509.MarshalECPrivateKey(key)
	keyPEM := string(pemBlock("EC PRIVATE KEY", kder))
	devs := make([]*benchDevice, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				id := fmt.Sprintf("bench-%06d", i)
				der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
				if err == nil {
					_, err = reg.CreateDevice(ctx, p, "default", registry.DeviceCreate{ID: id})
				}
				var iss *registry.IssuedCertificate
				if err == nil {
					iss, err = reg.IssueCertificate(ctx, p, "default", id, pemBlock("CERTIFICATE REQUEST", der))
				}
				if err != nil {
					failed.Store(err)
					return
				}
				d := &benchDevice{ID: id, CertPEM: iss.Certificate + iss.Chain, KeyPEM: keyPEM}
				d.tls, err = tls.X509KeyPair([]byte(d.CertPEM), []byte(keyPEM))
				if err != nil {
					failed.Store(err)
					return
				}
				devs[i] = d
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("make devices: %v", err)
	}
	br := mqttapi.New(reg, noProvisioning{}, mqttapi.WithLimits(mqttapi.Limits{ConnectsPerSecond: 1e9, ConnectBurst: 1 << 30}))
	addr, err := br.ListenTLS("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{selfSigned(b)}, ClientAuth: tls.RequestClientCert})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br, addr.String(), devs
}

func pemBlock(typ string, der []byte) []byte {
	return []byte("-----BEGIN " + typ + "-----\n" + wrap64(der) + "-----END " + typ + "-----\n")
}

func wrap64(der []byte) string {
	s := base64Std(der)
	var sb strings.Builder
	for len(s) > 64 {
		sb.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	sb.WriteString(s + "\n")
	return sb.String()
}

// selfSigned is a P-256 server certificate for 127.0.0.1 (the benchmark
// broker's clients do not verify it: the server side is what is measured).
func selfSigned(tb testing.TB) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// connectRaw opens an MQTT 3.1.1 session over mTLS with a minimal client
// (no library: the client's own cost stays small) and reads the CONNACK.
func connectRaw(addr string, cert *tls.Certificate, clientID string) (net.Conn, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
		&tls.Config{Certificates: []tls.Certificate{*cert}, InsecureSkipVerify: true,
			// What device stacks offer today (the hybrid post-quantum
			// exchange Go prefers would double the client's share).
			CurvePreferences: []tls.CurveID{tls.X25519}})
	if err != nil {
		return nil, err
	}
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 120, byte(len(clientID) >> 8), byte(len(clientID))}
	body := append(vh, clientID...)
	pkt := append([]byte{0x10, byte(len(body))}, body...)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(pkt); err != nil {
		conn.Close()
		return nil, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		conn.Close()
		return nil, err
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		conn.Close()
		return nil, fmt.Errorf("CONNACK %x", ack)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// BenchmarkMTLSConnect measures new device sessions per second: a full TLS
// handshake with a client certificate, the registry's certificate check
// (chain, credential status and device state read from the database),
// CONNECT/CONNACK, presence, DISCONNECT. Client and server share the
// machine, so the figure is a floor.
func BenchmarkMTLSConnect(b *testing.B) {
	const devices = 64
	_, addr, devs := benchFleet(b, devices)
	var next atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		d := devs[int(next.Add(1)-1)%devices]
		for pb.Next() {
			conn, err := connectRaw(addr, &d.tls, d.ID)
			if err != nil {
				b.Error(err)
				return
			}
			conn.Write([]byte{0xe0, 0})
			conn.Close()
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "conns/s")
}

// BenchmarkHeldConnections holds many device sessions at once (opened by
// a child process, so that only the server's memory is measured) and
// reports the server's memory per connection. Set
// GATEHOUSE_BENCH_CONNS (default 5000); GATEHOUSE_BENCH_HEAPPROFILE and
// GATEHOUSE_BENCH_GOROUTINES name files for a heap profile and a goroutine
// dump taken while the sessions are held; GATEHOUSE_BENCH_DEBUG=1 logs the
// runtime's stack figures (initial goroutine stack size, stack memory).
func BenchmarkHeldConnections(b *testing.B) {
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("GATEHOUSE_BENCH_CONNS")); err == nil && v > 0 {
		n = v
	}
	br, addr, devs := benchFleet(b, n)
	file := filepath.Join(b.TempDir(), "devices.json")
	raw, _ := json.Marshal(devs)
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	before := memNow()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldConnections$")
		cmd.Env = append(os.Environ(), "GATEHOUSE_HELPER_ADDR="+addr, "GATEHOUSE_HELPER_DEVICES="+file)
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		if !strings.HasPrefix(line, "ready") {
			b.Fatalf("client process: %q", line)
		}
		took := time.Since(start)
		deadline := time.Now().Add(30 * time.Second)
		for br.Stats().Sessions < n && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if got := br.Stats().Sessions; got < n {
			b.Fatalf("%d sessions held, want %d", got, n)
		}
		after := memNow()
		if path := os.Getenv("GATEHOUSE_BENCH_GOROUTINES"); path != "" {
			if f, err := os.Create(path); err == nil {
				pprof.Lookup("goroutine").WriteTo(f, 2)
				f.Close()
			}
		}
		if path := os.Getenv("GATEHOUSE_BENCH_HEAPPROFILE"); path != "" {
			if f, err := os.Create(path); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
		b.ReportMetric(float64(n), "conns")
		b.ReportMetric(float64(n)/took.Seconds(), "conns/s")
		b.ReportMetric(float64(after.heap-before.heap)/float64(n), "heap-B/conn")
		b.ReportMetric(float64(after.stack-before.stack)/float64(n), "stack-B/conn")
		b.ReportMetric(float64(after.rss-before.rss)/float64(n), "rss-B/conn")
		b.ReportMetric(float64(after.goroutines-before.goroutines)/float64(n), "goroutines/conn")
		b.ReportMetric(float64(after.rss)/(1<<20), "rss-MiB")
		if os.Getenv("GATEHOUSE_BENCH_DEBUG") != "" {
			samples := []metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}, {Name: "/memory/classes/os-stacks:bytes"}}
			metrics.Read(samples)
			for _, s := range samples {
				b.Logf("%s = %d", s.Name, s.Value.Uint64())
			}
		}
		stdin.Close()
		cmd.Wait()
		for br.Stats().Sessions > 0 && time.Now().Before(deadline.Add(30*time.Second)) {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

type memSample struct{ heap, stack, rss, goroutines int64 }

func memNow() memSample {
	for range 4 { // stacks shrink by half per collection
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := memSample{heap: int64(ms.HeapInuse), stack: int64(ms.StackInuse), goroutines: int64(runtime.NumGoroutine())}
	if raw, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				s.rss = kb << 10
			}
		}
	}
	return s
}

// TestHelperHoldConnections is the client process of
// BenchmarkHeldConnections; it does nothing in a normal test run.
func TestHelperHoldConnections(t *testing.T) {
	addr, file := os.Getenv("GATEHOUSE_HELPER_ADDR"), os.Getenv("GATEHOUSE_HELPER_DEVICES")
	if addr == "" {
		return // only the benchmark's child process does anything here
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var devs []*benchDevice
	if err := json.Unmarshal(raw, &devs); err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, len(devs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(devs) {
					return
				}
				c, err := tls.X509KeyPair([]byte(devs[i].CertPEM), []byte(devs[i].KeyPEM))
				if err == nil {
					conns[i], err = connectRaw(addr, &c, devs[i].ID)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "connect:", err)
					os.Exit(1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // hold until the parent closes stdin
	for _, c := range conns {
		c.Close()
	}
	os.Exit(0)
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
