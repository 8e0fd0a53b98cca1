package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

// benchMQTTOptions are the flags of "bench mqtt".
type benchMQTTOptions struct {
	sessions    int
	sources     int
	concurrency int
	hold        time.Duration
	memLimit    string
	gogc        string
	godebug     string
	keepAlive   int
}

func (a *app) benchMQTTCommand() *cobra.Command {
	var o benchMQTTOptions
	cmd := &cobra.Command{
		Use:   "mqtt",
		Short: "Hold N authenticated MQTT device sessions and measure the server's memory",
		Long: `Make N devices, each with its own operational certificate issued by the
scope CA (through the registry, in this process, on a temporary data
directory), then start "gatehouse serve" on that directory as a child process
and open N MQTT 3.1.1 sessions to it over mutual TLS: a full TLS 1.3 handshake
with the device's certificate, checked by the registry against the database
like any device, CONNECT and CONNACK. The sessions are held for --hold, then
the server's memory is read: its resident set (from /proc, now and at its
peak) and its Go heap and goroutines (from its /metrics).

The server runs in its own process, so its figures contain none of the
load generator's memory. One loopback address offers about 28,000 ephemeral
ports, so the sessions are spread over --sources source addresses
(127.0.0.2, 127.0.0.3, ...; Linux routes all of 127.0.0.0/8 to loopback).

Each session needs a file descriptor in both processes: the command raises
its RLIMIT_NOFILE (the child inherits it) to --sessions plus some; as an
unprivileged user it can only go up to the hard limit (ulimit -Hn), so raise
that first (ulimit -n 120000 as root, or LimitNOFILE in systemd).`,
		Example: `  gatehouse bench mqtt --sessions 50000
  gatehouse bench mqtt --sessions 50000 --gomemlimit 1600MiB -o json`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if o.sessions < 1 {
				return usagef("--sessions must be at least 1")
			}
			if o.sources < 1 || o.sources > 250 {
				return usagef("--sources must be between 1 and 250")
			}
			if o.concurrency < 1 {
				return usagef("--concurrency must be at least 1")
			}
			return a.benchMQTT(cmd.Context(), o)
		}),
	}
	f := cmd.Flags()
	f.IntVar(&o.sessions, "sessions", 5000, "MQTT sessions to hold at once")
	f.IntVar(&o.sources, "sources", 0, "loopback source addresses to spread the sessions over (default: one per 10,000 sessions)")
	f.IntVarP(&o.concurrency, "concurrency", "c", 32*runtime.GOMAXPROCS(0), "sessions connecting at once")
	f.DurationVar(&o.hold, "hold", 10*time.Second, "how long the sessions are held before the memory is read")
	f.StringVar(&o.memLimit, "gomemlimit", "", "GOMEMLIMIT of the server process (e.g. 1600MiB); default none")
	f.StringVar(&o.gogc, "gogc", "", "GOGC of the server process; default the runtime's (100)")
	f.StringVar(&o.godebug, "godebug", "", "GODEBUG of the server process (e.g. adaptivestackstart=0)")
	f.IntVar(&o.keepAlive, "keepalive", 600, "MQTT keep-alive of the sessions, in seconds (none is sent during the hold)")
	cmd.PreRun = func(cmd *cobra.Command, args []string) {
		if !cmd.Flags().Changed("sources") {
			o.sources = max(1, (o.sessions+9999)/10000)
		}
	}
	return cmd
}

// benchMQTTResult is what "bench mqtt" prints (-o json).
type benchMQTTResult struct {
	Sessions       int     `json:"sessions"`
	Sources        int     `json:"sources"`
	DeviceSeconds  float64 `json:"devices_seconds"` // making the devices and certificates
	ConnectSeconds float64 `json:"connect_seconds"`
	ConnectRate    float64 `json:"connects_per_second"`
	HoldSeconds    float64 `json:"hold_seconds"`
	GOMEMLIMIT     string  `json:"gomemlimit,omitempty"`
	GOGC           string  `json:"gogc,omitempty"`
	GODEBUG        string  `json:"godebug,omitempty"`
	// The server process.
	IdleRSS       int64   `json:"server_idle_rss_bytes"` // before any session
	RSS           int64   `json:"server_rss_bytes"`      // holding every session
	PeakRSS       int64   `json:"server_peak_rss_bytes"` // VmHWM: the most it ever held
	RSSPerSession float64 `json:"server_rss_bytes_per_session"`
	HeapInuse     int64   `json:"server_heap_inuse_bytes"`
	StackInuse    int64   `json:"server_stack_inuse_bytes"`
	Goroutines    int64   `json:"server_goroutines"`
	DevicesOnline int64   `json:"server_devices_online"` // as the registry counts them (presence)
	ClientRSS     int64   `json:"client_rss_bytes"`      // this process, the load generator
	FileLimit     uint64  `json:"rlimit_nofile"`
	GOMAXPROCS    int     `json:"gomaxprocs"`
}

// benchDevice is a device's ID and TLS client certificate.
type mqttBenchDevice struct {
	id   string
	cert tls.Certificate
}

func (a *app) benchMQTT(ctx context.Context, o benchMQTTOptions) error {
	limit, err := raiseFileLimit(uint64(o.sessions) + 256)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "gatehouse-bench-mqtt-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	res := benchMQTTResult{Sessions: o.sessions, Sources: o.sources, GOMEMLIMIT: o.memLimit, GOGC: o.gogc, GODEBUG: o.godebug,
		FileLimit: limit, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	fmt.Fprintf(a.stderr, "making %d devices with certificates in %s\n", o.sessions, dir)
	start := time.Now()
	devs, err := makeMQTTBenchDevices(ctx, dir, o.sessions)
	if err != nil {
		return fmt.Errorf("make devices: %w", err)
	}
	res.DeviceSeconds = round(time.Since(start).Seconds(), 1)

	srv, err := startBenchServer(ctx, dir, o)
	if err != nil {
		return err
	}
	defer srv.stop()
	fmt.Fprintf(a.stderr, "server pid %d, MQTT on %s\n", srv.cmd.Process.Pid, srv.mqttAddr)
	time.Sleep(2 * time.Second) // let start-up settle before the idle sample
	res.IdleRSS = procRSS(srv.cmd.Process.Pid, "VmRSS:")

	roots := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(dir, server.CAFile))
	if err != nil {
		return err
	}
	roots.AppendCertsFromPEM(caPEM)
	conns := make([]net.Conn, len(devs))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var (
		next, done atomic.Int64
		firstErr   atomic.Value
		wg         sync.WaitGroup
	)
	start = time.Now()
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	stopProgress := make(chan struct{})
	go func() {
		for {
			select {
			case <-progress.C:
				fmt.Fprintf(a.stderr, "%d sessions after %.0fs, server RSS %d MiB\n", done.Load(), time.Since(start).Seconds(),
					procRSS(srv.cmd.Process.Pid, "VmRSS:")>>20)
			case <-stopProgress:
				return
			}
		}
	}()
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for firstErr.Load() == nil && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(devs) {
					return
				}
				src := net.IPv4(127, 0, 0, byte(2+i%o.sources))
				c, err := connectDevice(srv.mqttAddr, src, roots, devs[i], o.keepAlive)
				if err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("session %d (%s from %s): %w", i, devs[i].id, src, err))
					return
				}
				conns[i] = c
				devs[i].cert = tls.Certificate{} // the client keeps only the connection
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stopProgress)
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("after %d sessions: %w", done.Load(), err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	took := time.Since(start)
	res.ConnectSeconds = round(took.Seconds(), 1)
	res.ConnectRate = round(float64(o.sessions)/took.Seconds(), 1)
	fmt.Fprintf(a.stderr, "%d sessions in %.1fs; holding them for %s\n", o.sessions, took.Seconds(), o.hold)

	holdStart := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.hold):
	}
	if err := srv.alive(); err != nil {
		return err
	}
	pid := srv.cmd.Process.Pid
	res.RSS = procRSS(pid, "VmRSS:")
	res.PeakRSS = procRSS(pid, "VmHWM:")
	m, err := srv.metrics()
	if err != nil {
		return fmt.Errorf("read the server's metrics: %w", err)
	}
	res.HeapInuse = int64(m["go_memstats_heap_inuse_bytes"])
	res.StackInuse = int64(m["go_memstats_stack_inuse_bytes"])
	res.Goroutines = int64(m["go_goroutines"])
	res.DevicesOnline = int64(m[`gatehouse_devices_connection{scope="default",status="online"}`])
	res.HoldSeconds = round(time.Since(holdStart).Seconds(), 1)
	res.RSSPerSession = round(float64(res.RSS-res.IdleRSS)/float64(o.sessions), 0)
	res.ClientRSS = procRSS(os.Getpid(), "VmRSS:")
	// Every connection must still be open: a session the server dropped
	// during the hold would make the figures flattering.
	if n := countClosed(conns); n > 0 {
		return fmt.Errorf("%d of %d sessions were closed by the server during the hold", n, o.sessions)
	}

	if a.jsonMode() {
		return a.printJSON(res)
	}
	mib := func(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
	t := newTable(a.stdout)
	t.row("Sessions held:", fmt.Sprintf("%d (mTLS, from %d source addresses)", res.Sessions, res.Sources))
	t.row("Connect:", fmt.Sprintf("%.1fs (%.0f sessions/s)", res.ConnectSeconds, res.ConnectRate))
	t.row("Server RSS:", fmt.Sprintf("%s (idle %s, peak %s)", mib(res.RSS), mib(res.IdleRSS), mib(res.PeakRSS)))
	t.row("Per session:", fmt.Sprintf("%.1f KiB RSS", res.RSSPerSession/1024))
	t.row("Server Go heap:", fmt.Sprintf("%s in use, %s stacks, %d goroutines", mib(res.HeapInuse), mib(res.StackInuse), res.Goroutines))
	t.row("Devices online:", strconv.FormatInt(res.DevicesOnline, 10))
	t.row("Client RSS:", mib(res.ClientRSS)+" (this process, not counted above)")
	return t.flush()
}

// raiseFileLimit raises RLIMIT_NOFILE to need (children inherit it); as an
// unprivileged user only up to the hard limit.
func raiseFileLimit(need uint64) (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur >= need {
		return rl.Cur, nil
	}
	want := syscall.Rlimit{Cur: need, Max: max(rl.Max, need)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return rl.Cur, fmt.Errorf("%d sessions need %d file descriptors, the hard limit is %d and raising it was refused (%v): run ulimit -n %d as root first",
			need-256, need, rl.Max, err, need)
	}
	return need, nil
}

// makeMQTTBenchDevices creates n devices in the default scope of a node on
// dir, each with a certificate the scope CA issued for it (one key pair
// for all: key generation is the device's work, not the server's), then
// stops the node.
func makeMQTTBenchDevices(ctx context.Context, dir string, n int) ([]mqttBenchDevice, error) {
	srv, err := server.Start(ctx, server.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	tok, err := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
	if err != nil {
		return nil, err
	}
	reg := srv.Registry()
	p, err := reg.Authenticate(ctx, strings.TrimSpace(string(tok)))
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "bench"}}, key)
	if err != nil {
		return nil, err
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
	devs := make([]mqttBenchDevice, n)
	var (
		next     atomic.Int64
		firstErr atomic.Value
		chainMu  sync.Mutex
		chain    [][]byte // the issuing CA's chain, shared by every device
		wg       sync.WaitGroup
	)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for firstErr.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				id := fmt.Sprintf("bench-%06d", i)
				_, err := reg.CreateDevice(ctx, p, gatehouse.DefaultScope, registry.DeviceCreate{ID: id})
				var iss *registry.IssuedCertificate
				if err == nil {
					iss, err = reg.IssueCertificate(ctx, p, gatehouse.DefaultScope, id, csr)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("device %s: %w", id, err))
					return
				}
				leaf, _ := pem.Decode([]byte(iss.Certificate))
				if leaf == nil {
					firstErr.CompareAndSwap(nil, errors.New("issued certificate is not PEM"))
					return
				}
				chainMu.Lock()
				if chain == nil {
					for rest := []byte(iss.Chain); ; {
						var b *pem.Block
						if b, rest = pem.Decode(rest); b == nil {
							break
						}
						chain = append(chain, b.Bytes)
					}
				}
				certs := append([][]byte{leaf.Bytes}, chain...)
				chainMu.Unlock()
				devs[i] = mqttBenchDevice{id: id, cert: tls.Certificate{Certificate: certs, PrivateKey: key}}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, err
	}
	return devs, ctx.Err()
}

// benchServer is "gatehouse serve" running as a child process.
type benchServer struct {
	cmd      *exec.Cmd
	dir      string
	url      string
	mqttAddr string
	exited   chan error
	logFile  string
}

func startBenchServer(ctx context.Context, dir string, o benchMQTTOptions) (*benchServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mqttAddr := ln.Addr().String()
	ln.Close()
	os.Remove(filepath.Join(dir, server.URLFile))
	logFile := filepath.Join(dir, "serve.log")
	logs, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer logs.Close()
	cmd := exec.Command(exe, "serve", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--mqtt-addr", mqttAddr,
		"--coaps-addr", "off", "--log-format", "json",
		// The load generator is one client opening sessions as fast as it can.
		"--mqtt-connects-per-second", "1e9", "--mqtt-connect-burst", "1000000000", "--mqtt-connect-timeout", "60s")
	cmd.Env = os.Environ()
	if o.memLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+o.memLimit)
	}
	if o.gogc != "" {
		cmd.Env = append(cmd.Env, "GOGC="+o.gogc)
	}
	if o.godebug != "" {
		cmd.Env = append(cmd.Env, "GODEBUG="+o.godebug)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &benchServer{cmd: cmd, dir: dir, mqttAddr: mqttAddr, exited: make(chan error, 1), logFile: logFile}
	go func() { s.exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, server.URLFile)); err == nil && len(b) > 0 {
			if c, err := net.DialTimeout("tcp", mqttAddr, time.Second); err == nil {
				c.Close()
				s.url = strings.TrimSpace(string(b))
				return s, nil
			}
		}
		if err := s.alive(); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("the server did not start within 60s; its log: %s", logFile)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports an error if the server process has exited.
func (s *benchServer) alive() error {
	select {
	case err := <-s.exited:
		s.exited <- err
		tail, _ := os.ReadFile(s.logFile)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("the server exited (%v):\n%s", err, tail)
	default:
		return nil
	}
}

func (s *benchServer) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// metrics reads the server's /metrics (with DATA/metrics-token) into
// series -> value.
func (s *benchServer) metrics() (map[string]float64, error) {
	tok, err := os.ReadFile(filepath.Join(s.dir, server.MetricsTokenFile))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(s.dir, server.CAFile))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	req, _ := http.NewRequest("GET", s.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// connectDevice opens one device session: TCP from src, TLS 1.3 with the
// device's certificate (the server verified against the installation
// root), MQTT 3.1.1 CONNECT with the device ID as client ID, CONNACK 0.
func connectDevice(addr string, src net.IP, roots *x509.CertPool, d mqttBenchDevice, keepAlive int) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: 60 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
	conn, err := tls.DialWithDialer(dialer, "tcp", addr, &tls.Config{
		RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{d.cert},
		// What device stacks offer today (Go's default hybrid post-quantum
		// key exchange would weigh on both sides of the benchmark).
		CurvePreferences: []tls.CurveID{tls.X25519}})
	if err != nil {
		return nil, err
	}
	id := d.id
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, byte(keepAlive >> 8), byte(keepAlive), byte(len(id) >> 8), byte(len(id))}
	body := append(vh, id...)
	pkt := append([]byte{0x10, byte(len(body))}, body...)
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := conn.Write(pkt); err != nil {
		conn.Close()
		return nil, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		conn.Close()
		return nil, fmt.Errorf("CONNACK % x, want return code 0", ack)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// countClosed counts connections the server has closed: a read that
// returns at once (EOF or a DISCONNECT) rather than timing out.
func countClosed(conns []net.Conn) int {
	var n atomic.Int64
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [1]byte
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				c := conns[i]
				c.SetReadDeadline(time.Now().Add(time.Millisecond))
				_, err := c.Read(b[:])
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(n.Load())
}

// procRSS reads a size field (VmRSS:, VmHWM:) of /proc/{pid}/status, in
// bytes; 0 if it cannot.
func procRSS(pid int, field string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
