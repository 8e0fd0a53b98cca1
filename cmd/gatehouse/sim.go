package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/deviceclient"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// simOptions are the flags of "sim".
type simOptions struct {
	devices     int
	protocol    string
	attestation string
	concurrency int
	rate        float64
	dropRate    float64
	delay       time.Duration
	renew       bool
	scope       string
	seed        uint64
}

func (a *app) simCommand() *cobra.Command {
	var o simOptions
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate a fleet of devices provisioning through the device SDK",
		Long: `Simulate N devices provisioning through the device SDK (deviceclient), each
with its own P-256 key and its own TLS connections, and print a summary:
successes, failures by code, retries, and latency percentiles (a device's
latency is its whole provisioning, retries and backoff included).

Without --server, a server is started in this process on a temporary data
directory (SQLite, durability on, device rate limits raised); with --server
(and --token, --ca-file as for the admin commands) the named server is used.
Either way a group enrollment "sim-..." is created in --scope for the chosen
attestation: a symmetric group key (devices derive their keys) or a
bootstrap token usable by the whole fleet.

Protocols: native and dps take symmetric_key; native and est take token.

Fault injection goes through the SDK's dialer: --drop-rate p drops a
connection with probability p (at a random point in the handshake or the
exchange), --delay d adds d before each connection and each write, so the
SDK's retry and backoff paths run as on a flaky network.

--rate R starts devices at R per second (arrival rate); without it, devices
start as fast as --concurrency allows. --renew renews each device's
certificate once after it has provisioned.

A progress line is drawn on stderr when it is a terminal, plain lines
otherwise. Exit status 1 when any device failed.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			return a.sim(cmd.Context(), o)
		}),
	}
	f := cmd.Flags()
	f.IntVar(&o.devices, "devices", 100, "number of simulated devices")
	f.StringVar(&o.protocol, "protocol", string(deviceclient.Native), "provisioning protocol: native, dps or est")
	f.StringVar(&o.attestation, "attestation", string(gatehouse.AttestSymmetricKey), "attestation: symmetric_key or token")
	f.IntVarP(&o.concurrency, "concurrency", "c", 16*runtime.GOMAXPROCS(0), "devices provisioning at once")
	f.Float64Var(&o.rate, "rate", 0, "arrival rate: devices started per second (0: as fast as --concurrency allows)")
	f.Float64Var(&o.dropRate, "drop-rate", 0, "probability that a connection is dropped (0 to 1)")
	f.DurationVar(&o.delay, "delay", 0, "latency added before each connection and each write")
	f.BoolVar(&o.renew, "renew", false, "renew each device's certificate once after provisioning")
	f.StringVar(&o.scope, "scope", gatehouse.DefaultScope, "scope to provision into")
	f.Uint64Var(&o.seed, "seed", 0, "seed of the fault injection (0: random)")
	return cmd
}

func (o *simOptions) check() error {
	switch {
	case o.devices < 1:
		return usagef("--devices must be at least 1")
	case o.concurrency < 1:
		return usagef("--concurrency must be at least 1")
	case o.rate < 0:
		return usagef("--rate must not be negative")
	case o.dropRate < 0 || o.dropRate >= 1:
		return usagef("--drop-rate must be at least 0 and below 1")
	case o.delay < 0:
		return usagef("--delay must not be negative")
	}
	proto := deviceclient.Protocol(o.protocol)
	att := gatehouse.AttestationType(o.attestation)
	switch proto {
	case deviceclient.Native, deviceclient.DPS, deviceclient.EST:
	default:
		return usagef("--protocol must be native, dps or est, not %q", o.protocol)
	}
	switch att {
	case gatehouse.AttestSymmetricKey, gatehouse.AttestToken:
	default:
		return usagef("--attestation must be symmetric_key or token, not %q", o.attestation)
	}
	if proto == deviceclient.DPS && att == gatehouse.AttestToken {
		return usagef("--protocol dps takes --attestation symmetric_key")
	}
	if proto == deviceclient.EST && att == gatehouse.AttestSymmetricKey {
		return usagef("--protocol est takes --attestation token")
	}
	return nil
}

// simTarget is the server the fleet provisions against and the enrollment's
// secret.
type simTarget struct {
	url          string
	roots        *x509.CertPool
	enrollmentID string
	groupKey     []byte
	token        string
	inProcess    bool
	close        func()
}

// simResult is what "sim" prints (-o json).
type simResult struct {
	Devices     int            `json:"devices"`
	Protocol    string         `json:"protocol"`
	Attestation string         `json:"attestation"`
	Concurrency int            `json:"concurrency"`
	DropRate    float64        `json:"drop_rate"`
	DelayMS     float64        `json:"delay_ms"`
	InProcess   bool           `json:"in_process"`
	Seconds     float64        `json:"seconds"`
	Rate        float64        `json:"rate"`
	Succeeded   int            `json:"succeeded"`
	Failed      int            `json:"failed"`
	Failures    map[string]int `json:"failures"`
	Retries     int64          `json:"retries"`
	Renewed     int            `json:"renewed"`
	Dropped     int64          `json:"dropped_connections"`
	Connections int64          `json:"connections"`
	P50         float64        `json:"p50_ms"`
	P95         float64        `json:"p95_ms"`
	P99         float64        `json:"p99_ms"`
	Max         float64        `json:"max_ms"`
}

func (a *app) sim(ctx context.Context, o simOptions) error {
	var (
		t   *simTarget
		err error
	)
	if a.setting("server", envServer) != "" {
		t, err = a.simRemoteTarget(ctx, o)
	} else {
		t, err = simLocalTarget(ctx, o)
	}
	if err != nil {
		return err
	}
	defer t.close()

	fleet := newSimFleet(t, o)
	prog := newSimProgress(a.stderr, o.devices, fleet)
	prog.start()
	elapsed := fleet.run(ctx)
	prog.stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	res := simResult{Devices: o.devices, Protocol: o.protocol, Attestation: o.attestation, Concurrency: o.concurrency,
		DropRate: o.dropRate, DelayMS: ms(o.delay), InProcess: t.inProcess, Seconds: round(elapsed.Seconds(), 3),
		Succeeded: len(fleet.lat), Failures: fleet.codes, Retries: fleet.retries.Load(), Renewed: int(fleet.renewed.Load()),
		Dropped: fleet.faults.dropped.Load(), Connections: fleet.faults.dialed.Load()}
	for _, n := range fleet.codes {
		res.Failed += n
	}
	res.Rate = round(float64(res.Succeeded)/elapsed.Seconds(), 1)
	lat := fleet.lat
	slices.Sort(lat)
	res.P50, res.P95, res.P99 = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.95)), ms(percentile(lat, 0.99))
	if len(lat) > 0 {
		res.Max = ms(lat[len(lat)-1])
	}
	if a.jsonMode() {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else {
		a.printSim(res)
	}
	if res.Failed > 0 {
		return exitStatus(1)
	}
	return nil
}

func (a *app) printSim(r simResult) {
	w := a.stdout
	where := "in-process server"
	if !r.InProcess {
		where = "remote server"
	}
	fmt.Fprintf(w, "provisioned %d of %d devices in %.2f s (%s, %s, %s, concurrency %d)\n",
		r.Succeeded, r.Devices, r.Seconds, where, r.Protocol, r.Attestation, r.Concurrency)
	fmt.Fprintf(w, "rate      %.0f devices/s\n", r.Rate)
	fmt.Fprintf(w, "latency   p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  max %.1f ms\n", r.P50, r.P95, r.P99, r.Max)
	fmt.Fprintf(w, "faults    %d of %d connections dropped (drop rate %g, delay %g ms)\n", r.Dropped, r.Connections, r.DropRate, r.DelayMS)
	fmt.Fprintf(w, "retries   %d\n", r.Retries)
	if r.Renewed > 0 {
		fmt.Fprintf(w, "renewed   %d\n", r.Renewed)
	}
	if r.Failed == 0 {
		fmt.Fprintln(w, "failures  none")
		return
	}
	fmt.Fprintf(w, "failures  %d\n", r.Failed)
	for _, code := range slices.Sorted(mapsKeys(r.Failures)) {
		fmt.Fprintf(w, "  %-24s %d\n", code, r.Failures[code])
	}
}

// simEnrollment is the fleet's group enrollment. A token serves the whole
// fleet, with room for retries whose first attempt the server did complete.
func simEnrollment(o simOptions) registry.EnrollmentCreate {
	e := registry.EnrollmentCreate{
		ID:          "sim-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		Type:        gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestationType(o.attestation)},
		Credentials: gatehouse.CredentialPolicy{Certificate: gatehouse.CertRequired},
	}
	if e.Attestation.Type == gatehouse.AttestToken {
		e.Attestation.MaxUses = min(2*o.devices+100, 1_000_000)
	}
	return e
}

func simTargetOf(e *gatehouse.Enrollment) (*simTarget, error) {
	t := &simTarget{enrollmentID: e.ID, token: e.Attestation.Token}
	if e.Attestation.Type == gatehouse.AttestSymmetricKey {
		key, err := base64.StdEncoding.DecodeString(e.Attestation.PrimaryKey)
		if err != nil {
			return nil, fmt.Errorf("enrollment key: %w", err)
		}
		t.groupKey = key
	}
	return t, nil
}

// simLocalTarget starts a server in this process on a temporary data
// directory, as "bench provision" does, and creates the fleet's enrollment.
func simLocalTarget(ctx context.Context, o simOptions) (*simTarget, error) {
	ls, err := startLocalServer(ctx, "gatehouse-sim-", o.scope, simEnrollment(o))
	if err != nil {
		return nil, err
	}
	t, err := simTargetOf(ls.enrollment)
	if err != nil {
		ls.close()
		return nil, err
	}
	t.url, t.inProcess, t.roots, t.close = ls.srv.URL(), true, ls.roots, ls.close
	return t, nil
}

// simRemoteTarget creates the fleet's enrollment on a running server
// through its admin API.
func (a *app) simRemoteTarget(ctx context.Context, o simOptions) (*simTarget, error) {
	c, err := a.resolve(true)
	if err != nil {
		return nil, err
	}
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	e, err := cl.CreateEnrollment(ctx, o.scope, simEnrollment(o))
	if err != nil {
		return nil, err
	}
	t, err := simTargetOf(e)
	if err != nil {
		return nil, err
	}
	if c.caFile != "" {
		caPEM, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, err
		}
		t.roots = x509.NewCertPool()
		if !t.roots.AppendCertsFromPEM(caPEM) {
			return nil, usagef("%s holds no PEM certificate", c.caFile)
		}
	}
	t.url, t.close = strings.TrimRight(c.server, "/"), func() {}
	return t, nil
}

// simFleet runs the devices and gathers what happened to them.
type simFleet struct {
	t      *simTarget
	o      simOptions
	faults *faultDialer
	prefix string

	next    atomic.Int64 // the last device number taken
	done    atomic.Int64 // devices finished, either way
	failed  atomic.Int64
	retries atomic.Int64
	renewed atomic.Int64

	mu    sync.Mutex
	lat   []time.Duration
	codes map[string]int
}

func newSimFleet(t *simTarget, o simOptions) *simFleet {
	return &simFleet{t: t, o: o, faults: newFaultDialer(o.dropRate, o.delay, o.seed),
		prefix: strings.TrimPrefix(t.enrollmentID, "sim-"), lat: make([]time.Duration, 0, o.devices), codes: map[string]int{}}
}

// run provisions every device from o.concurrency goroutines, device i
// starting no sooner than i/rate seconds in, and returns the time it took.
func (f *simFleet) run(ctx context.Context) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	for range min(f.o.concurrency, f.o.devices) {
		wg.Go(func() {
			for {
				i := f.next.Add(1)
				if i > int64(f.o.devices) || ctx.Err() != nil {
					return
				}
				if f.o.rate > 0 {
					at := start.Add(time.Duration(float64(i-1) / f.o.rate * float64(time.Second)))
					if d := time.Until(at); d > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(d):
						}
					}
				}
				d, code := f.device(ctx, fmt.Sprintf("sim-%s-%06d", f.prefix, i))
				f.mu.Lock()
				if code != "" {
					f.codes[code]++
					f.failed.Add(1)
				} else {
					f.lat = append(f.lat, d)
				}
				f.mu.Unlock()
				f.done.Add(1)
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// device provisions one simulated device (and renews it with --renew):
// a client of its own, its own key, a new TLS connection per request. It
// returns the provisioning's latency, or the failure's code.
func (f *simFleet) device(ctx context.Context, regID string) (time.Duration, string) {
	creds := deviceclient.Credentials{GroupKey: f.t.groupKey}
	if f.t.token != "" {
		creds = deviceclient.Credentials{BootstrapToken: f.t.token}
	}
	c, err := deviceclient.New(deviceclient.Config{
		ServerURL: f.t.url, Scope: f.o.scope, RegistrationID: regID, EnrollmentID: f.t.enrollmentID,
		Protocol: deviceclient.Protocol(f.o.protocol), Credentials: creds, RootCAs: f.t.roots,
		// Shorter than the SDK's defaults, so that a run with drops is not
		// mostly waiting; still bounded, still jittered.
		Retry:            deviceclient.Retry{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Attempts: 10},
		DialContext:      f.faults.DialContext,
		FreshConnections: true,
		OnRetry:          func(error, time.Duration) { f.retries.Add(1) },
	})
	if err != nil {
		return 0, "client_error"
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Provision(ctx); err != nil {
		return 0, simFailureCode(err)
	}
	d := time.Since(start)
	if f.o.renew {
		if _, err := c.Renew(ctx); err != nil {
			return 0, "renew_" + simFailureCode(err)
		}
		f.renewed.Add(1)
	}
	return d, ""
}

// simFailureCode is the code a failure is counted under: the server's code,
// "transport", or what the context says.
func simFailureCode(err error) string {
	var e *deviceclient.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &e):
		return e.Code
	}
	return "client_error"
}

// simProgress reports the fleet's progress on w: one line redrawn in place
// on a terminal, a plain line every few seconds otherwise.
type simProgress struct {
	w     io.Writer
	total int
	f     *simFleet
	tty   bool
	every time.Duration
	begin time.Time
	quit  chan struct{}
	wg    sync.WaitGroup
}

func newSimProgress(w io.Writer, total int, f *simFleet) *simProgress {
	p := &simProgress{w: w, total: total, f: f, every: 2 * time.Second, quit: make(chan struct{})}
	if fl, ok := w.(*os.File); ok {
		if st, err := fl.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.every = true, 200*time.Millisecond
		}
	}
	return p
}

func (p *simProgress) start() {
	p.begin = time.Now()
	p.wg.Go(func() {
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-t.C:
				p.draw()
			}
		}
	})
}

func (p *simProgress) stop() {
	close(p.quit)
	p.wg.Wait()
	p.draw()
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

func (p *simProgress) draw() {
	done, failed := p.f.done.Load(), p.f.failed.Load()
	el := time.Since(p.begin)
	line := fmt.Sprintf("%d/%d devices  %d failed  %d retries  %.0f/s  %s",
		done, p.total, failed, p.f.retries.Load(), float64(done)/max(el.Seconds(), 1e-9), el.Truncate(100*time.Millisecond))
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	const width = 24
	n := int(int64(width) * done / int64(max(p.total, 1)))
	fmt.Fprintf(p.w, "\r[%s%s] %s\x1b[K", strings.Repeat("#", n), strings.Repeat(".", width-n), line)
}
