package main

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/deviceclient"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

// simOptions are the flags of "sim".
type simOptions struct {
	devices     int
	protocol    string
	protocols   string
	mqttAddr    string
	coapAddr    string
	plans       [][]deviceclient.Protocol // from --protocols (or --protocol): device i follows plans[i % len]
	attestation string
	concurrency int
	rate        float64
	dropRate    float64
	delay       time.Duration
	renew       bool
	report      bool
	cpuProfile  string
	factory     *simFactory // --attestation x509: the fleet's manufacturer CA
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
attestation: a symmetric group key (devices derive their keys), a
bootstrap token usable by the whole fleet, or (x509) a factory CA made for
the run: sim verifies it with the server (the proof-of-possession step an
operator takes), and gives each device a factory certificate (CN = its
registration ID) signed by it.

Protocols: native (HTTPS), dps (DPS over HTTPS), est (EST over HTTPS),
dps-mqtt (DPS over MQTT), mqtt (native MQTT), coap (native CoAP over DTLS),
est-coaps (EST-coaps over DTLS). All but est take symmetric_key; native,
mqtt and est take token; all take x509.

--protocols mixes and chains them: a comma separates the plans spread
across the fleet (device i follows plan i mod n), ">" separates a plan's
fallback order. "native,dps-mqtt,coap" gives a third of the fleet to each;
"dps-mqtt>native" has every device try DPS over MQTT first and HTTPS when
MQTT cannot be reached. MQTT and CoAP are reached on the in-process
server's listeners, or with --server on its host at 8883 and 5684, unless
--mqtt-addr and --coap-addr say otherwise (pointing one at a closed port
shows the fallback at work). --protocols overrides --protocol.

Fault injection goes through the SDK's TCP dialer (HTTPS and MQTT; CoAP
over UDP is not faulted): --drop-rate p drops a
connection with probability p (at a random point in the handshake or the
exchange), --delay d adds d before each connection and each write, so the
SDK's retry and backoff paths run as on a flaky network.

--rate R starts devices at R per second (arrival rate); without it, devices
start as fast as --concurrency allows. --renew renews each device's
certificate once after it has provisioned. Then (unless --report=false)
each device connects to the MQTT broker with its certificate, as a device
in the field would, waits for the configuration the broker sends, reports
its properties and disconnects; the registry is checked afterwards to hold
every device's report. With --server, sessions go to --mqtt-addr, or the
server's host at 8883, whose broker limits new connections per source
address (default 50/s): a fleet simulated from one address beyond that
is refused and retried, so lower --rate or use --report=false.

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
	f.StringVar(&o.protocol, "protocol", string(deviceclient.Native), "provisioning protocol: native, dps, est, dps-mqtt, mqtt, coap or est-coaps")
	f.StringVar(&o.protocols, "protocols", "", "plans spread across the fleet, each a fallback order: native,dps-mqtt,coap or mqtt>native")
	f.StringVar(&o.mqttAddr, "mqtt-addr", "", "host:port of the MQTT over TLS listener (default: the in-process server's, or the --server host, 8883)")
	f.StringVar(&o.coapAddr, "coap-addr", "", "host:port of the CoAP over DTLS listener (default: the in-process server's, or the --server host, 5684)")
	f.StringVar(&o.attestation, "attestation", string(gatehouse.AttestSymmetricKey), "attestation: symmetric_key, token or x509")
	f.IntVarP(&o.concurrency, "concurrency", "c", 16*runtime.GOMAXPROCS(0), "devices provisioning at once")
	f.Float64Var(&o.rate, "rate", 0, "arrival rate: devices started per second (0: as fast as --concurrency allows)")
	f.Float64Var(&o.dropRate, "drop-rate", 0, "probability that a connection is dropped (0 to 1)")
	f.DurationVar(&o.delay, "delay", 0, "latency added before each connection and each write")
	f.BoolVar(&o.renew, "renew", false, "renew each device's certificate once after provisioning")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the fleet's run (the in-process server is in it too) to this file")
	f.BoolVar(&o.report, "report", true, "once provisioned, connect over MQTT, wait for the configuration and report properties")
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
	att := gatehouse.AttestationType(o.attestation)
	switch att {
	case gatehouse.AttestSymmetricKey, gatehouse.AttestToken, gatehouse.AttestX509:
	default:
		return usagef("--attestation must be symmetric_key, token or x509, not %q", o.attestation)
	}
	spec := o.protocol
	if o.protocols != "" {
		spec = o.protocols
	}
	plans, err := parseSimPlans(spec)
	if err != nil {
		return err
	}
	for _, plan := range plans {
		for _, p := range plan {
			if !simAccepts(p, att) {
				return usagef("protocol %s does not take --attestation %s", p, att)
			}
		}
	}
	o.plans = plans
	if o.protocols == "" {
		o.protocols = o.protocol
	}
	return nil
}

// parseSimPlans reads "a>b,c": plans separated by commas, each a fallback
// order separated by ">".
func parseSimPlans(spec string) ([][]deviceclient.Protocol, error) {
	var plans [][]deviceclient.Protocol
	for _, ps := range strings.Split(spec, ",") {
		var plan []deviceclient.Protocol
		for _, name := range strings.Split(ps, ">") {
			p := deviceclient.Protocol(strings.TrimSpace(name))
			if !slices.Contains(deviceclient.AllProtocols, p) {
				return nil, usagef("unknown protocol %q: use %s", name, joinProtocols(deviceclient.AllProtocols, ", "))
			}
			if slices.Contains(plan, p) {
				return nil, usagef("protocol %s appears twice in the fallback order %q", p, ps)
			}
			plan = append(plan, p)
		}
		plans = append(plans, plan)
	}
	return plans, nil
}

func joinProtocols(ps []deviceclient.Protocol, sep string) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, sep)
}

// simAccepts reports whether protocol p carries attestation att.
func simAccepts(p deviceclient.Protocol, att gatehouse.AttestationType) bool {
	if att == gatehouse.AttestX509 {
		return true
	}
	switch p {
	case deviceclient.Native, deviceclient.NativeMQTT:
		return true
	case deviceclient.EST:
		return att == gatehouse.AttestToken
	}
	return att == gatehouse.AttestSymmetricKey
}

// simTarget is the server the fleet provisions against and the enrollment's
// secret.
type simTarget struct {
	url          string
	roots        *x509.CertPool
	enrollmentID string
	groupKey     []byte
	token        string
	factory      *simFactory // x509: signs each device's factory certificate
	mqttAddr     string      // empty: the SDK's default
	coapAddr     string
	// sessionAddr is the MQTT listener devices connect to once provisioned
	// (--report): the server's own, even when --mqtt-addr points the
	// provisioning elsewhere; empty: the SDK's default.
	sessionAddr string
	inProcess   bool
	close       func()
	// admin lists the fleet's devices back from the registry afterwards.
	admin *adminclient.Client
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
	RetryCodes  map[string]int `json:"retry_codes"` // what the retried failures were
	Renewed     int            `json:"renewed"`
	// Reported counts the devices that connected over MQTT once
	// provisioned, received their configuration and reported their
	// properties (--report); ReportedInRegistry, those whose properties
	// the registry holds afterwards.
	Reported           int     `json:"reported"`
	ReportedInRegistry int     `json:"reported_in_registry"`
	Dropped            int64   `json:"dropped_connections"`
	Connections        int64   `json:"connections"`
	P50                float64 `json:"p50_ms"`
	P95                float64 `json:"p95_ms"`
	P99                float64 `json:"p99_ms"`
	Max                float64 `json:"max_ms"`
	Fallbacks          int64   `json:"fallbacks"`
	// Registered is how many devices the registry holds for the fleet's
	// enrollment afterwards; Duplicates counts what should be unique and is
	// not: a device ID or certificate serial two simulated devices were
	// given, or a registry device beyond one per device that succeeded.
	Registered int `json:"registered"`
	Duplicates int `json:"duplicates"`
	// ByProtocol is, per protocol a device provisioned over, how many
	// did and their latency.
	ByProtocol map[string]simProtocolResult `json:"by_protocol"`
}

// simProtocolResult is the devices that provisioned over one protocol.
type simProtocolResult struct {
	Succeeded int     `json:"succeeded"`
	P50       float64 `json:"p50_ms"`
	P95       float64 `json:"p95_ms"`
	P99       float64 `json:"p99_ms"`
}

func (a *app) sim(ctx context.Context, o simOptions) error {
	var (
		t   *simTarget
		err error
	)
	if o.attestation == string(gatehouse.AttestX509) {
		if o.factory, err = newSimFactory(); err != nil {
			return err
		}
	}
	if a.setting("server", envServer) != "" {
		t, err = a.simRemoteTarget(ctx, o)
	} else {
		t, err = simLocalTarget(ctx, o)
	}
	if err != nil {
		return err
	}
	defer t.close()
	if t.factory = o.factory; t.factory != nil {
		if err := t.factory.verify(ctx, t.admin, o.scope, t.enrollmentID); err != nil {
			return err
		}
	}

	fleet := newSimFleet(t, o)
	if o.cpuProfile != "" {
		pf, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := pf.Close(); err != nil {
				fmt.Fprintf(a.stderr, "gatehouse: the CPU profile %s is incomplete: %v\n", o.cpuProfile, err)
			}
		}()
	}
	prog := newSimProgress(a.stderr, o.devices, fleet)
	prog.start()
	elapsed := fleet.run(ctx)
	prog.stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	res := simResult{Devices: o.devices, Protocol: o.protocols, Attestation: o.attestation, Concurrency: o.concurrency,
		DropRate: o.dropRate, DelayMS: ms(o.delay), InProcess: t.inProcess, Seconds: round(elapsed.Seconds(), 3),
		Succeeded: len(fleet.lat), Failures: fleet.codes, Retries: fleet.retries.Load(), Renewed: int(fleet.renewed.Load()),
		Reported: int(fleet.reported.Load()),
		Dropped:  fleet.faults.dropped.Load(), Connections: fleet.faults.dialed.Load(), Fallbacks: fleet.fallbacks.Load(),
		RetryCodes: fleet.retryCodes,
		ByProtocol: map[string]simProtocolResult{}}
	for p, l := range fleet.byProto {
		slices.Sort(l)
		res.ByProtocol[string(p)] = simProtocolResult{Succeeded: len(l), P50: ms(percentile(l, 0.50)), P95: ms(percentile(l, 0.95)), P99: ms(percentile(l, 0.99))}
	}
	for _, n := range fleet.codes {
		res.Failed += n
	}
	if res.Registered, res.Duplicates, res.ReportedInRegistry, err = fleet.checkRegistry(ctx); err != nil {
		return fmt.Errorf("list the fleet's devices: %w", err)
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
	if res.Failed > 0 || res.Duplicates > 0 || o.report && res.ReportedInRegistry != res.Succeeded {
		return exitStatus(1)
	}
	return nil
}

// checkRegistry counts the fleet's duplicates: device IDs and certificate
// serials the devices were given more than once, and devices the registry
// holds for the fleet's enrollment beyond one per device that succeeded
// (retries after dropped answers must not make a second device). It returns
// how many devices the registry holds for the enrollment, and how many of
// them hold the report their simulated device made (--report) and have been
// seen.
func (f *simFleet) checkRegistry(ctx context.Context) (registered, duplicates, reported int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids, duplicates := givenDuplicates(f.given)
	for d, err := range f.t.admin.Devices(ctx, f.o.scope, adminclient.ListOptions{Enrollment: f.t.enrollmentID, Limit: 1000}) {
		if err != nil {
			return 0, 0, 0, err
		}
		registered++
		if !ids[d.ID] {
			duplicates++ // a device no simulated device was told of
		}
		var r simReport
		if json.Unmarshal(d.Reported, &r) == nil && r.Sim.Device == d.ID && d.Connection.LastSeen != nil {
			reported++
		}
	}
	return registered, duplicates, reported, nil
}

// simReport is the reported properties a simulated device sends.
type simReport struct {
	Sim struct {
		Device   string `json:"device"`
		Firmware string `json:"firmware"`
	} `json:"sim"`
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
	fmt.Fprintf(w, "retries   %d", r.Retries)
	if len(r.RetryCodes) > 0 {
		var parts []string
		for _, code := range slices.Sorted(maps.Keys(r.RetryCodes)) {
			parts = append(parts, fmt.Sprintf("%s %d", code, r.RetryCodes[code]))
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	if r.Fallbacks > 0 {
		fmt.Fprintf(w, "fallbacks %d\n", r.Fallbacks)
	}
	if len(r.ByProtocol) > 1 || r.Fallbacks > 0 {
		for _, p := range slices.Sorted(maps.Keys(r.ByProtocol)) {
			b := r.ByProtocol[p]
			fmt.Fprintf(w, "  %-10s %6d devices  p50 %.1f ms  p95 %.1f ms  p99 %.1f ms\n", p, b.Succeeded, b.P50, b.P95, b.P99)
		}
	}
	if r.Renewed > 0 {
		fmt.Fprintf(w, "renewed   %d\n", r.Renewed)
	}
	if r.Reported > 0 || r.ReportedInRegistry > 0 {
		fmt.Fprintf(w, "reported  %d devices connected and reported; the registry holds %d reports\n", r.Reported, r.ReportedInRegistry)
	}
	fmt.Fprintf(w, "registry  %d devices for the fleet's enrollment, %d duplicates\n", r.Registered, r.Duplicates)
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
	if o.factory != nil {
		e.Attestation.Certificate = o.factory.certPEM()
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
	req := simEnrollment(o)
	ls, err := startLocalServer(ctx, "gatehouse-sim-", o.scope, &req, func(c *server.Config) {
		if o.report || simUses(o, deviceclient.DPSMQTT, deviceclient.NativeMQTT) {
			// The whole fleet comes from one address: the broker's
			// per-source connection limit (50/s) would be all a run
			// measured.
			c.MQTTAddr = "127.0.0.1:0"
			c.MQTTLimits.ConnectsPerSecond, c.MQTTLimits.ConnectBurst = 1e9, 1<<30
		}
		if simUses(o, deviceclient.CoAP, deviceclient.ESTCoAP) {
			c.CoAPSAddr = "127.0.0.1:0"
		}
	})
	if err != nil {
		return nil, err
	}
	t, err := simTargetOf(ls.enrollment)
	if err != nil {
		ls.close()
		return nil, err
	}
	t.url, t.inProcess, t.roots, t.close = ls.srv.URL(), true, ls.roots, ls.close
	if t.admin, err = adminclient.New(t.url, ls.token, adminclient.WithRootCAs(ls.roots)); err != nil {
		ls.close()
		return nil, err
	}
	t.close = func() { t.admin.Close(); ls.close() }
	if a := ls.srv.MQTTAddr(); a != nil {
		t.mqttAddr, t.sessionAddr = a.String(), a.String()
	}
	if a := ls.srv.CoAPSAddr(); a != nil {
		t.coapAddr = a.String()
	}
	// Set, they point elsewhere (a closed port, to watch the fallback).
	t.mqttAddr, t.coapAddr = cmp.Or(o.mqttAddr, t.mqttAddr), cmp.Or(o.coapAddr, t.coapAddr)
	return t, nil
}

// simUses reports whether any plan names one of ps.
func simUses(o simOptions, ps ...deviceclient.Protocol) bool {
	for _, plan := range o.plans {
		for _, p := range plan {
			if slices.Contains(ps, p) {
				return true
			}
		}
	}
	return false
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
	e, err := cl.CreateEnrollment(ctx, o.scope, simEnrollment(o))
	if err != nil {
		cl.Close()
		return nil, err
	}
	t, err := simTargetOf(e)
	if err != nil {
		cl.Close()
		return nil, err
	}
	t.admin = cl
	if c.caFile != "" {
		caPEM, err := os.ReadFile(c.caFile)
		if err != nil {
			cl.Close()
			return nil, err
		}
		t.roots = x509.NewCertPool()
		if !t.roots.AppendCertsFromPEM(caPEM) {
			cl.Close()
			return nil, usagef("%s holds no PEM certificate", c.caFile)
		}
	}
	t.url, t.close = strings.TrimRight(c.server, "/"), func() { cl.Close() }
	t.mqttAddr, t.coapAddr, t.sessionAddr = o.mqttAddr, o.coapAddr, o.mqttAddr
	return t, nil
}

// simFleet runs the devices and gathers what happened to them.
type simFleet struct {
	t      *simTarget
	o      simOptions
	faults *faultDialer
	prefix string

	next      atomic.Int64 // the last device number taken
	done      atomic.Int64 // devices finished, either way
	failed    atomic.Int64
	retries   atomic.Int64
	renewed   atomic.Int64
	reported  atomic.Int64
	fallbacks atomic.Int64

	mu         sync.Mutex
	lat        []time.Duration
	byProto    map[deviceclient.Protocol][]time.Duration
	codes      map[string]int
	retryCodes map[string]int
	given      []simIdentity // what each device that succeeded was given
}

// givenDuplicates returns the device IDs given and how many device IDs and
// certificate serials were given more than once.
func givenDuplicates(given []simIdentity) (ids map[string]bool, duplicates int) {
	ids = map[string]bool{}
	serials := map[string]bool{}
	for _, g := range given {
		if ids[g.deviceID] {
			duplicates++
		}
		ids[g.deviceID] = true
		for _, sn := range g.serials {
			if sn == "" {
				continue // no certificate
			}
			if serials[sn] {
				duplicates++
			}
			serials[sn] = true
		}
	}
	return ids, duplicates
}

// simIdentity is the device ID and certificate serials (the first and the
// renewed) one simulated device was given.
type simIdentity struct {
	deviceID string
	serials  []string
}

func newSimFleet(t *simTarget, o simOptions) *simFleet {
	return &simFleet{t: t, o: o, faults: newFaultDialer(o.dropRate, o.delay, o.seed),
		prefix: strings.TrimPrefix(t.enrollmentID, "sim-"), lat: make([]time.Duration, 0, o.devices), codes: map[string]int{},
		byProto: map[deviceclient.Protocol][]time.Duration{}, retryCodes: map[string]int{}}
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
				plan := f.o.plans[int(i-1)%len(f.o.plans)]
				d, proto, given, code := f.device(ctx, fmt.Sprintf("sim-%s-%06d", f.prefix, i), plan)
				f.mu.Lock()
				if code != "" {
					f.codes[code]++
					f.failed.Add(1)
				} else {
					f.lat = append(f.lat, d)
					f.byProto[proto] = append(f.byProto[proto], d)
					f.given = append(f.given, given)
				}
				f.mu.Unlock()
				f.done.Add(1)
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// device provisions one simulated device, renews it (--renew), then
// connects and reports (--report): a client of its own, its own key, a new
// TLS connection per request. It
// returns the provisioning's latency, the protocol that carried it and
// what the device was given, or the failure's code.
func (f *simFleet) device(ctx context.Context, regID string, plan []deviceclient.Protocol) (time.Duration, deviceclient.Protocol, simIdentity, string) {
	creds, err := f.credentials(regID)
	if err != nil {
		return 0, "", simIdentity{}, "client_error"
	}
	c, err := deviceclient.New(deviceclient.Config{
		ServerURL: f.t.url, Scope: f.o.scope, RegistrationID: regID, EnrollmentID: f.t.enrollmentID,
		Protocols: plan, Credentials: creds, RootCAs: f.t.roots, MQTTAddr: f.t.mqttAddr, CoAPAddr: f.t.coapAddr,
		Store: &deviceclient.MemoryStore{}, // a simulated device lives as long as the run
		// A silent CoAP port is only noticed by this timeout.
		ConnectTimeout: 5 * time.Second,
		OnFallback:     func(_, _ deviceclient.Protocol, _ error) { f.fallbacks.Add(1) },
		// Shorter than the SDK's defaults, so that a run with drops is not
		// mostly waiting; still bounded, still jittered.
		Retry:            deviceclient.Retry{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Attempts: 10},
		DialContext:      f.faults.DialContext,
		FreshConnections: true,
		OnRetry:          f.onRetry,
	})
	if err != nil {
		return 0, "", simIdentity{}, "client_error"
	}
	defer c.Close()
	start := time.Now()
	id, err := c.Provision(ctx)
	if err != nil {
		return 0, "", simIdentity{}, simFailureCode(err)
	}
	d := time.Since(start)
	given := simIdentity{deviceID: id.DeviceID, serials: []string{certSerial(id.CertificatePEM)}}
	if f.o.renew {
		renewed, err := c.Renew(ctx)
		if err != nil {
			return 0, "", simIdentity{}, "renew_" + simFailureCode(err)
		}
		given.serials = append(given.serials, certSerial(renewed.CertificatePEM))
		f.renewed.Add(1)
		id = renewed
	}
	if f.o.report {
		if err := f.report(ctx, id, creds); err != nil {
			return 0, "", simIdentity{}, "report_" + simFailureCode(err)
		}
		f.reported.Add(1)
	}
	return d, id.Protocol, given, ""
}

// report connects the provisioned device to the broker as a device in the
// field would, waits for the configuration the broker sends at connect and
// reports the device's properties; a session lost on the way (an injected
// drop) starts again.
func (f *simFleet) report(ctx context.Context, id *deviceclient.Identity, creds deviceclient.Credentials) error {
	// A client of its own: sessions go to the hub the registration
	// assigned, else to the server's broker, even where --mqtt-addr points
	// the provisioning elsewhere.
	c, err := deviceclient.New(deviceclient.Config{ServerURL: f.t.url, Scope: f.o.scope, RegistrationID: id.RegistrationID,
		Credentials: creds, RootCAs: f.t.roots,
		Store:    &deviceclient.MemoryStore{},
		MQTTAddr: f.t.sessionAddr, ConnectTimeout: 5 * time.Second, DialContext: f.faults.DialContext,
		Retry:   deviceclient.Retry{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Attempts: 10},
		OnRetry: f.onRetry})
	if err != nil {
		return err
	}
	var r simReport
	r.Sim.Device, r.Sim.Firmware = id.DeviceID, "1.0.0"
	for attempt := 1; ; attempt++ {
		err := f.session(ctx, c, id, r)
		if err == nil || !deviceclient.IsRetryable(err) || attempt == 10 {
			return err
		}
		f.onRetry(err, 0)
	}
}

// credentials are what device regID proves itself with: the group's key
// (it derives its own), the fleet's token, or a factory certificate.
func (f *simFleet) credentials(regID string) (deviceclient.Credentials, error) {
	switch {
	case f.t.factory != nil:
		cert, err := f.t.factory.issue(regID)
		return deviceclient.Credentials{FactoryCertificate: cert}, err
	case f.t.token != "":
		return deviceclient.Credentials{BootstrapToken: f.t.token}, nil
	}
	return deviceclient.Credentials{GroupKey: f.t.groupKey}, nil
}

// session runs one MQTT session: connect, configuration, report.
func (f *simFleet) session(ctx context.Context, c *deviceclient.Client, id *deviceclient.Identity, r simReport) error {
	s, err := c.Connect(ctx, id)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Config(ctx); err != nil {
		return err
	}
	return s.Report(ctx, r)
}

// onRetry counts a retry and its cause.
func (f *simFleet) onRetry(err error, _ time.Duration) {
	f.retries.Add(1)
	f.mu.Lock()
	f.retryCodes[simFailureCode(err)]++
	f.mu.Unlock()
}

// certSerial is a PEM certificate's serial in hexadecimal, or the PEM
// itself if it does not parse (still unique per certificate).
func certSerial(certPEM string) string {
	if certPEM == "" {
		return ""
	}
	if b, _ := pem.Decode([]byte(certPEM)); b != nil {
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			return c.SerialNumber.Text(16)
		}
	}
	return certPEM
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
