package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

func (a *app) benchCommand() *cobra.Command {
	return group("bench", "Measure a server's throughput, query latency and MQTT memory", a.benchProvisionCommand(), a.benchQueryCommand(), a.benchMQTTCommand())
}

// benchOptions are the flags of "bench provision".
type benchOptions struct {
	devices     int
	concurrency int
	freshTLS    bool
	noCSR       bool
	scope       string
	floorCount  int
	cpuProfile  string
	segments    int
	database    string // the in-process server's database URL; empty: SQLite in its data directory
}

func (a *app) benchProvisionCommand() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Provision N new devices as fast as possible and compare the rate to the crypto floor",
		Long: `Provision N new devices over the native device API, each a symmetric-key
registration with a group-derived key and (unless --no-csr) a P-256 CSR the
server signs. Each simulated device makes its own key pair and CSR.

Without --server, a server is started in this process on a temporary data
directory (SQLite, durability on, device rate limits raised; --database
postgres://... puts its data in that PostgreSQL database instead); with --server
(and --token, --ca-file as for the admin commands) the named server is
measured, and a group enrollment "bench-..." is created in --scope.

--fresh-tls gives every device its own TLS connection and full handshake
(no keep-alive, no session resumption), as a fleet of separate devices would;
without it, connections are reused.

The crypto floor is the rate, on this machine, in this process and with the
same number of goroutines, of the cryptographic work one registration needs
and nothing else: a full TLS 1.3 handshake over loopback (both sides,
ECDSA P-256 server certificate, X25519), the device's key generation and CSR
signature, and the server's CSR verification and certificate signature. The
floor is measured before, between and after the run's --slices slices, so
that other load on the machine weighs on both alike; floor is the floor's total work over
its total time, rate the run's, and ratio = rate / floor.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if o.devices < 1 {
				return usagef("--devices must be at least 1")
			}
			if o.concurrency < 1 {
				return usagef("--concurrency must be at least 1")
			}
			if o.database != "" && a.setting("server", envServer) != "" {
				return usagef("--database configures the in-process server; it cannot go with --server")
			}
			return a.benchProvision(cmd.Context(), o)
		}),
	}
	f := cmd.Flags()
	f.IntVar(&o.devices, "devices", 1000, "number of devices to provision")
	f.IntVarP(&o.concurrency, "concurrency", "c", 32*runtime.GOMAXPROCS(0), "devices registering at once (the server group-commits concurrent registrations)")
	f.BoolVar(&o.freshTLS, "fresh-tls", false, "a new TLS connection and full handshake per device")
	f.BoolVar(&o.noCSR, "no-csr", false, "register without a CSR (no certificate issued; the floor then omits the CSR work)")
	f.StringVar(&o.scope, "scope", gatehouse.DefaultScope, "scope to provision into")
	f.IntVar(&o.floorCount, "floor-count", 0, "registrations' worth of crypto per floor measurement (default: devices, at most 3000)")
	f.IntVar(&o.segments, "slices", 2, "the run is cut in this many slices, with a floor measurement before, between and after them")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile to this file; the crypto floor's samples are labelled phase=floor (go tool pprof -tagignore phase=floor leaves them out)")
	f.StringVar(&o.database, "database", "", "the in-process server's database: postgres://... (an empty database; default: SQLite in the temporary data directory)")
	return cmd
}

// benchTarget is the server under test and an enrollment to register with.
type benchTarget struct {
	url          string
	roots        *x509.CertPool
	scope        string
	enrollmentID string
	groupKey     []byte
	close        func()
}

// benchResult is what "bench provision" prints (-o json).
type benchResult struct {
	Devices     int            `json:"devices"`
	Concurrency int            `json:"concurrency"`
	FreshTLS    bool           `json:"fresh_tls"`
	CSR         bool           `json:"csr"`
	InProcess   bool           `json:"in_process"`
	GOMAXPROCS  int            `json:"gomaxprocs"`
	Seconds     float64        `json:"seconds"`
	Rate        float64        `json:"rate"`
	P50         float64        `json:"p50_ms"`
	P95         float64        `json:"p95_ms"`
	P99         float64        `json:"p99_ms"`
	Max         float64        `json:"max_ms"`
	Errors      int            `json:"errors"`
	ErrorCodes  map[string]int `json:"error_codes"`
	Floor       float64        `json:"floor"`
	FloorSlices []float64      `json:"floor_slices"` // the floor of each slice, run between the run's slices
	Ratio       float64        `json:"ratio"`
	// CPU time of this process (server and devices) per registration, in
	// the run and in the floor: less sensitive to other load on the machine
	// than the rates.
	CPUPerRegistration      float64 `json:"cpu_us_per_registration"`
	FloorCPUPerRegistration float64 `json:"floor_cpu_us_per_registration"`
}

func (a *app) benchProvision(ctx context.Context, o benchOptions) error {
	remote := a.setting("server", envServer) != ""
	var (
		t   *benchTarget
		err error
	)
	if remote {
		t, err = a.benchRemoteTarget(ctx, o)
	} else {
		t, err = benchLocalTarget(ctx, o)
	}
	if err != nil {
		return err
	}
	defer t.close()

	floorN := o.floorCount
	if floorN <= 0 {
		floorN = min(o.devices, 3000)
	}
	fl, err := newCryptoFloor()
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		pf, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// The run and the floor take turns, slice by slice, so that both see the
	// same machine: another process's load shows in both, not only in one.
	run, err := newBenchRun(t, o)
	if err != nil {
		return err
	}
	segments := max(min(o.segments, o.devices), 1)
	floorParts := segments + 1
	floorN = max(floorN, floorParts)
	var (
		elapsed, floorTime time.Duration
		runCPU, floorCPU   time.Duration
		floorSlices        []float64
	)
	for i := range floorParts {
		fn := floorN*(i+1)/floorParts - floorN*i/floorParts
		c0 := processCPU()
		var d time.Duration
		// Labelled, so that a profile can leave the floor out.
		pprof.Do(ctx, pprof.Labels("phase", "floor"), func(ctx context.Context) {
			d, err = fl.measure(ctx, o.concurrency, fn, !o.noCSR)
		})
		if err != nil {
			return fmt.Errorf("crypto floor: %w", err)
		}
		floorCPU += processCPU() - c0
		floorTime += d
		floorSlices = append(floorSlices, round(float64(fn)/d.Seconds(), 1))
		if i == segments {
			break
		}
		c0 = processCPU()
		elapsed += run.run(ctx, int64(o.devices)*int64(i+1)/int64(segments))
		runCPU += processCPU() - c0
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	lat, codes := run.lat, run.codes
	floor := float64(floorN) / floorTime.Seconds()

	res := benchResult{Devices: o.devices, Concurrency: o.concurrency, FreshTLS: o.freshTLS, CSR: !o.noCSR, InProcess: !remote,
		GOMAXPROCS: runtime.GOMAXPROCS(0), Seconds: round(elapsed.Seconds(), 3), ErrorCodes: codes,
		FloorSlices:             floorSlices,
		CPUPerRegistration:      round(float64(runCPU.Microseconds())/float64(max(o.devices, 1)), 0),
		FloorCPUPerRegistration: round(float64(floorCPU.Microseconds())/float64(floorN), 0)}
	for _, n := range codes {
		res.Errors += n
	}
	ok := len(lat)
	res.Rate = round(float64(ok)/elapsed.Seconds(), 1)
	slices.Sort(lat)
	res.P50, res.P95, res.P99 = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.95)), ms(percentile(lat, 0.99))
	if ok > 0 {
		res.Max = ms(lat[ok-1])
	}
	res.Floor = round(floor, 1)
	if res.Floor > 0 {
		res.Ratio = round(res.Rate/res.Floor, 3)
	}
	if a.jsonMode() {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else {
		a.printBench(res)
	}
	if res.Errors > 0 {
		return exitStatus(1)
	}
	return nil
}

func (a *app) printBench(r benchResult) {
	mode := "keep-alive"
	if r.FreshTLS {
		mode = "fresh TLS per device"
	}
	issue := "with certificate issuance (CSR)"
	if !r.CSR {
		issue = "without certificate issuance"
	}
	where := "in-process server"
	if !r.InProcess {
		where = "remote server"
	}
	w := a.stdout
	fmt.Fprintf(w, "provisioned %d of %d devices in %.2f s (%s, %s, %s, concurrency %d, GOMAXPROCS %d)\n",
		r.Devices-r.Errors, r.Devices, r.Seconds, where, mode, issue, r.Concurrency, r.GOMAXPROCS)
	fmt.Fprintf(w, "rate      %.0f registrations/s\n", r.Rate)
	fmt.Fprintf(w, "latency   p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  max %.1f ms\n", r.P50, r.P95, r.P99, r.Max)
	fmt.Fprintf(w, "floor     %.0f registrations/s of crypto alone (slices %s)\n", r.Floor, fmtRates(r.FloorSlices))
	fmt.Fprintf(w, "ratio     %.2f of the crypto floor\n", r.Ratio)
	fmt.Fprintf(w, "cpu       %.0f us per registration (floor %.0f us)\n", r.CPUPerRegistration, r.FloorCPUPerRegistration)
	if r.Errors == 0 {
		fmt.Fprintln(w, "errors    none")
		return
	}
	fmt.Fprintf(w, "errors    %d\n", r.Errors)
	for _, code := range slices.Sorted(mapsKeys(r.ErrorCodes)) {
		fmt.Fprintf(w, "  %-24s %d\n", code, r.ErrorCodes[code])
	}
}

func fmtRates(rates []float64) string {
	var b strings.Builder
	for i, r := range rates {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(strconv.FormatFloat(r, 'f', 0, 64))
	}
	return b.String()
}

func mapsKeys(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// benchLocalTarget starts a server in this process on a temporary data
// directory and creates a symmetric-key group enrollment in it.
func benchLocalTarget(ctx context.Context, o benchOptions) (*benchTarget, error) {
	req := benchEnrollment(o)
	ls, err := startLocalServer(ctx, "gatehouse-bench-", o.scope, &req, func(c *server.Config) { c.Database = o.database })
	if err != nil {
		return nil, err
	}
	groupKey, err := base64.StdEncoding.DecodeString(ls.enrollment.Attestation.PrimaryKey)
	if err != nil {
		ls.close()
		return nil, fmt.Errorf("enrollment key: %w", err)
	}
	return &benchTarget{url: ls.srv.URL(), roots: ls.roots, scope: o.scope, enrollmentID: ls.enrollment.ID, groupKey: groupKey, close: ls.close}, nil
}

// benchRemoteTarget creates the enrollment on a running server through its
// admin API.
func (a *app) benchRemoteTarget(ctx context.Context, o benchOptions) (*benchTarget, error) {
	c, err := a.resolve(true)
	if err != nil {
		return nil, err
	}
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	e, err := cl.CreateEnrollment(ctx, o.scope, benchEnrollment(o))
	if err != nil {
		return nil, err
	}
	groupKey, err := base64.StdEncoding.DecodeString(e.Attestation.PrimaryKey)
	if err != nil {
		return nil, fmt.Errorf("enrollment key: %w", err)
	}
	var roots *x509.CertPool
	if c.caFile != "" {
		caPEM, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, err
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(caPEM) {
			return nil, usagef("%s holds no PEM certificate", c.caFile)
		}
	}
	return &benchTarget{url: strings.TrimRight(c.server, "/"), roots: roots, scope: o.scope, enrollmentID: e.ID, groupKey: groupKey,
		close: func() {}}, nil
}

func benchEnrollment(o benchOptions) registry.EnrollmentCreate {
	policy := gatehouse.CertRequired
	if o.noCSR {
		policy = ""
	}
	return registry.EnrollmentCreate{
		ID:          "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		Type:        gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey},
		Credentials: gatehouse.CredentialPolicy{Certificate: policy},
	}
}

// benchClientTLS is the TLS configuration of every simulated device, in the
// run and in the floor: TLS 1.3, X25519, no session resumption.
func benchClientTLS(roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		RootCAs:          roots,
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519},
	}
}

// benchRun registers the devices. The load generator speaks HTTP/1.1
// straight over crypto/tls, one connection per simulated device at a time
// (a new one per device with --fresh-tls), so that its own cost beside the
// server stays small: no connection pool, no per-connection goroutines.
type benchRun struct {
	t      *benchTarget
	o      benchOptions
	tls    *tls.Config
	addr   string // host:port
	host   string // the Host header
	path   string // the registration path
	prefix string

	next  atomic.Int64 // the last device number taken
	lat   []time.Duration
	codes map[string]int
}

func newBenchRun(t *benchTarget, o benchOptions) (*benchRun, error) {
	u, err := url.Parse(t.url)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, usagef("server URL %q is not of the form https://host[:port]", t.url)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	cfg := benchClientTLS(t.roots)
	cfg.ServerName = u.Hostname()
	return &benchRun{t: t, o: o, tls: cfg, addr: addr, host: u.Host,
		path:   strings.TrimRight(u.Path, "/") + "/device/v1/" + url.PathEscape(t.scope) + "/register",
		prefix: strings.TrimPrefix(t.enrollmentID, "bench-"), lat: make([]time.Duration, 0, o.devices), codes: map[string]int{}}, nil
}

// run registers devices up to number upto (counting from 1 over every
// call) from o.concurrency goroutines and returns the time it took; the
// latencies of the successful registrations and the failures by code add up
// in r.lat and r.codes.
func (r *benchRun) run(ctx context.Context, upto int64) time.Duration {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	start := time.Now()
	for range r.o.concurrency {
		wg.Go(func() {
			var (
				local      []time.Duration
				localCodes = map[string]int{}
				conn       benchConn
			)
			defer conn.close()
			for {
				i := r.next.Add(1)
				if i > upto || ctx.Err() != nil {
					r.next.Add(-1)
					break
				}
				d, code := r.register(ctx, &conn, fmt.Sprintf("dev-%s-%06d", r.prefix, i))
				if code != "" {
					localCodes[code]++
				} else {
					local = append(local, d)
				}
			}
			mu.Lock()
			r.lat = append(r.lat, local...)
			for c, n := range localCodes {
				r.codes[c] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return time.Since(start)
}

// benchConn is a worker's connection, kept between devices unless
// --fresh-tls.
type benchConn struct {
	c  *tls.Conn
	br *bufio.Reader
}

func (c *benchConn) close() {
	if c.c != nil {
		c.c.Close()
		c.c, c.br = nil, nil
	}
}

// register is one device's registration: key, CSR, request. It returns the
// request's latency (connection and handshake included), or the failure's
// code.
func (r *benchRun) register(ctx context.Context, conn *benchConn, id string) (time.Duration, string) {
	body := map[string]string{"registrationId": id, "enrollmentId": r.t.enrollmentID}
	if !r.o.noCSR {
		csr, err := newDeviceCSR(id)
		if err != nil {
			return 0, "client_error"
		}
		body["csr"] = string(csr)
	}
	b, _ := json.Marshal(body)
	sas := attest.NewSAS(attest.DeriveDeviceKey(r.t.groupKey, id), r.t.scope+"/registrations/"+id, time.Now().Add(time.Hour))
	var req bytes.Buffer
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAuthorization: %s\r\nContent-Length: %d\r\n",
		r.path, r.host, sas, len(b))
	if r.o.freshTLS {
		req.WriteString("Connection: close\r\n")
	}
	req.WriteString("\r\n")
	req.Write(b)

	start := time.Now()
	if conn.c == nil {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: r.tls}
		c, err := d.DialContext(ctx, "tcp", r.addr)
		if err != nil {
			return 0, "transport"
		}
		conn.c, conn.br = c.(*tls.Conn), bufio.NewReaderSize(c, 8<<10)
	}
	conn.c.SetDeadline(time.Now().Add(60 * time.Second))
	resp, out, err := conn.exchange(req.Bytes())
	d := time.Since(start)
	if err != nil || r.o.freshTLS || resp.Close {
		conn.close()
	}
	if err != nil {
		return 0, "transport"
	}
	if resp.StatusCode != http.StatusOK {
		var p struct {
			Code string `json:"code"`
		}
		if json.Unmarshal(out, &p) == nil && p.Code != "" {
			return 0, p.Code
		}
		return 0, "http_" + strconv.Itoa(resp.StatusCode)
	}
	if !r.o.noCSR && !bytes.Contains(out, []byte(`"certificate":"-----BEGIN CERTIFICATE-----`)) {
		return 0, "no_certificate"
	}
	return d, ""
}

// exchange writes one request and reads its response.
func (c *benchConn) exchange(req []byte) (*http.Response, []byte, error) {
	if _, err := c.c.Write(req); err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, nil, err
	}
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp, out, err
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// newDeviceCSR makes a P-256 key and a PEM CSR for it, as a device does.
func newDeviceCSR(id string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 2) }

func round(x float64, digits int) float64 {
	s := strconv.FormatFloat(x, 'f', digits, 64)
	v, _ := strconv.ParseFloat(s, 64)
	return v
}
