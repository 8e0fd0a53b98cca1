package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
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
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// benchQueryOptions are the flags of "bench query".
type benchQueryOptions struct {
	devices     int // in-process only: how many devices to seed
	requests    int // per query
	countReqs   int // per count query
	concurrency int
	limit       int
	walkPages   int
	scope       string
	tagKey      string
	cpuProfile  string
}

func (a *app) benchQueryCommand() *cobra.Command {
	var o benchQueryOptions
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Measure device listing, tag query and count latency over kept-open connections",
		Long: `Measure the admin API's read path on a scope's devices: latency percentiles
(p50, p95, p99, max) of each kind of query, over HTTP/1.1 connections that
stay open (one per concurrent client; the TLS handshakes happen once, before
the measured requests), so the figures are the server's answer time plus one
loopback round trip, not a handshake.

Queries, --requests of each list and --count-requests of each count:
  walk        pages of 1000 followed by nextCursor from the first device, one
              after the other (up to --walk-pages pages); its cursors are the
              start points of deep-page
  first-page  GET .../devices?limit=L
  deep-page   a page of L from a cursor picked at random along the whole walk
  tag-eq      ?tag=KEY=V&limit=L, V going round the key's values
  tag-in      ?tag=KEY in (V1,V2,V3)&limit=L
  state       ?state=S&limit=L, S going round the states present
  count-state GET .../device-counts?by=state
  count-tag   GET .../device-counts?by=tag:KEY
Every answer is checked: page sizes against the counts, every item against
its filter, cursors moving forward, totals unchanged (after each query's
run, so that the client's JSON decoding does not take the cores from the
server while latencies are taken). A check that fails counts as an error
(code "mismatch"), and the exit status is then 1.

Without --server, a server is started in this process on a temporary data
directory (SQLite) and --devices devices are imported into it first through
the bulk import path (tags site and model, a few devices active or
quarantined). With --server (and --token, --ca-file as for the admin
commands) the named server's scope is queried as it is.`,
		Example: `  gatehouse bench query --devices 100000
  gatehouse bench query --server https://127.0.0.1:8443 --token T --ca-file DATA/ca.pem --requests 2000
  gatehouse bench query --devices 1000000 --cpuprofile query.prof -o json`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			switch {
			case o.requests < 1 || o.countReqs < 1:
				return usagef("--requests and --count-requests must be at least 1")
			case o.concurrency < 1:
				return usagef("--concurrency must be at least 1")
			case o.limit < 1 || o.limit > registry.MaxPageSize:
				return usagef("--limit must be between 1 and %d", registry.MaxPageSize)
			case o.devices < 1:
				return usagef("--devices must be at least 1")
			case o.walkPages < 1:
				return usagef("--walk-pages must be at least 1")
			}
			if err := gatehouse.ValidateTagKey(o.tagKey); err != nil {
				return usagef("--tag-key: %v", err)
			}
			return a.benchQuery(cmd.Context(), o)
		}),
	}
	f := cmd.Flags()
	f.IntVar(&o.devices, "devices", 10000, "without --server: devices to import into the in-process server before measuring")
	f.IntVar(&o.requests, "requests", 1000, "requests of each list query")
	f.IntVar(&o.countReqs, "count-requests", 100, "requests of each count query (a count reads the whole scope's index)")
	f.IntVarP(&o.concurrency, "concurrency", "c", 2*runtime.GOMAXPROCS(0), "requests in flight at once, each client on its own kept-open connection")
	f.IntVar(&o.limit, "limit", registry.DefaultPageSize, "page size of the list queries")
	f.IntVar(&o.walkPages, "walk-pages", 1000, "at most this many pages of 1000 in the walk (1000 covers 1,000,000 devices)")
	f.StringVar(&o.scope, "scope", gatehouse.DefaultScope, "scope to query")
	f.StringVar(&o.tagKey, "tag-key", "site", "tag whose values the tag queries and count-tag use")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured queries to this file (the in-process server is in it too)")
	return cmd
}

// benchQueryResult is what "bench query" prints (-o json).
type benchQueryResult struct {
	Devices     int64  `json:"devices"`
	Scope       string `json:"scope"`
	InProcess   bool   `json:"in_process"`
	Concurrency int    `json:"concurrency"`
	Requests    int    `json:"requests"` // of each list query (the counts: count_requests)
	CountReqs   int    `json:"count_requests"`
	Limit       int    `json:"limit"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	// Connections is how many TLS connections the client opened in all:
	// at most the concurrency when they were kept open.
	Connections int64            `json:"connections"`
	SeedSeconds float64          `json:"seed_seconds,omitempty"`
	Walked      int64            `json:"walked_devices"`
	Queries     []benchQueryStat `json:"queries"`
	Errors      int              `json:"errors"`
	// Go heap in use and resident set of this process after the run, when
	// the server runs in it (the client's share is small).
	HeapMiB float64 `json:"heap_mib,omitempty"`
	RSSMiB  float64 `json:"rss_mib,omitempty"`
}

// benchQueryStat is one query's latencies (successful requests only).
type benchQueryStat struct {
	Name       string         `json:"name"`
	Example    string         `json:"example"` // the path and query of one request
	Requests   int            `json:"requests"`
	Rate       float64        `json:"rate"`
	P50        float64        `json:"p50_ms"`
	P95        float64        `json:"p95_ms"`
	P99        float64        `json:"p99_ms"`
	Max        float64        `json:"max_ms"`
	Items      float64        `json:"items_per_response"`
	Errors     int            `json:"errors"`
	ErrorCodes map[string]int `json:"error_codes,omitempty"`
	Mismatch   string         `json:"first_mismatch,omitempty"` // why the first answer failed its check
}

func (a *app) benchQuery(ctx context.Context, o benchQueryOptions) error {
	remote := a.setting("server", envServer) != ""
	var (
		base, token string
		roots       *x509.CertPool
		res         = benchQueryResult{Scope: o.scope, InProcess: !remote, Concurrency: o.concurrency, Requests: o.requests, CountReqs: o.countReqs,
			Limit: o.limit, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	)
	if remote {
		c, err := a.resolve(true)
		if err != nil {
			return err
		}
		base, token = strings.TrimRight(c.server, "/"), c.token
		if c.caFile != "" {
			pem, err := os.ReadFile(c.caFile)
			if err != nil {
				return err
			}
			roots = x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return usagef("%s holds no PEM certificate", c.caFile)
			}
		}
	} else {
		ls, err := startLocalServer(ctx, "gatehouse-bench-query-", o.scope, nil)
		if err != nil {
			return err
		}
		defer ls.close()
		start := time.Now()
		if err := seedDevices(ctx, ls, o.scope, o.devices); err != nil {
			return err
		}
		res.SeedSeconds = round(time.Since(start).Seconds(), 2)
		base, token, roots = ls.srv.URL(), ls.token, ls.roots
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return usagef("server URL %q is not of the form https://host[:port]", base)
	}
	q := newQueryClient(base, token, roots, o.concurrency)
	defer q.close()
	scopePath := "/v1/scopes/" + url.PathEscape(o.scope)

	// What there is to query: the totals every answer is checked against.
	var byState, byTag registry.DeviceCounts
	if err := q.getJSON(ctx, scopePath+"/device-counts?by=state", &byState); err != nil {
		return err
	}
	if err := q.getJSON(ctx, scopePath+"/device-counts?by=tag:"+url.QueryEscape(o.tagKey), &byTag); err != nil {
		return err
	}
	if byState.Total == 0 {
		return fmt.Errorf("scope %q has no devices to query", o.scope)
	}
	res.Devices = byState.Total
	states := slices.Sorted(keysOf(byState.Counts))
	values := slices.Sorted(keysOf(byTag.Counts))
	values = slices.DeleteFunc(values, func(v string) bool { return v == "" })

	// Open every client's connection before anything is measured.
	if err := q.warm(ctx, scopePath+"/device-counts?by=state"); err != nil {
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

	walk, cursors := q.walk(ctx, scopePath, o.walkPages)
	res.Walked = walk.walked
	res.Queries = append(res.Queries, walk.stat)
	if len(cursors) == 0 {
		cursors = []string{""}
	}

	L := o.limit
	limit := "limit=" + strconv.Itoa(L)
	list := scopePath + "/devices?"
	kinds := []queryKind{
		{name: "first-page", req: func(int) (string, func([]byte) (int, error)) {
			return list + limit, checkPage(min(int64(L), res.Devices), nil)
		}},
		{name: "deep-page", req: func(i int) (string, func([]byte) (int, error)) {
			c := cursors[rand.IntN(len(cursors))]
			if c == "" {
				return list + limit, checkPage(min(int64(L), res.Devices), nil)
			}
			return list + limit + "&cursor=" + url.QueryEscape(c), checkPage(-1, nil)
		}},
	}
	if len(values) > 0 {
		kinds = append(kinds,
			queryKind{name: "tag-eq", req: func(i int) (string, func([]byte) (int, error)) {
				v := values[i%len(values)]
				return list + limit + "&tag=" + url.QueryEscape(o.tagKey+"="+v),
					checkPage(min(int64(L), byTag.Counts[v]), func(d *benchDevice) bool { return d.Tags[o.tagKey] == v })
			}},
			queryKind{name: "tag-in", req: func(i int) (string, func([]byte) (int, error)) {
				set := map[string]bool{}
				var n int64
				for j := range min(3, len(values)) {
					v := values[(i+j)%len(values)]
					set[v] = true
					n += byTag.Counts[v]
				}
				sel := o.tagKey + " in (" + strings.Join(slices.Sorted(keysOf(set)), ",") + ")"
				return list + limit + "&tag=" + url.QueryEscape(sel),
					checkPage(min(int64(L), n), func(d *benchDevice) bool { return set[d.Tags[o.tagKey]] })
			}})
	}
	kinds = append(kinds,
		queryKind{name: "state", req: func(i int) (string, func([]byte) (int, error)) {
			s := states[i%len(states)]
			return list + limit + "&state=" + url.QueryEscape(s),
				checkPage(min(int64(L), byState.Counts[s]), func(d *benchDevice) bool { return d.State == s })
		}},
		queryKind{name: "count-state", requests: o.countReqs, req: func(int) (string, func([]byte) (int, error)) {
			return scopePath + "/device-counts?by=state", checkCounts(res.Devices)
		}},
		queryKind{name: "count-tag", requests: o.countReqs, req: func(int) (string, func([]byte) (int, error)) {
			return scopePath + "/device-counts?by=tag:" + url.QueryEscape(o.tagKey), checkCounts(res.Devices)
		}},
	)
	for _, k := range kinds {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n := o.requests
		if k.requests > 0 {
			n = k.requests
		}
		res.Queries = append(res.Queries, q.measure(ctx, k, n, o.concurrency))
	}
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	for _, s := range res.Queries {
		res.Errors += s.Errors
	}
	res.Connections = q.dials.Load()
	if !remote {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		res.HeapMiB = round(float64(ms.HeapInuse)/(1<<20), 1)
		res.RSSMiB = round(float64(processRSS())/(1<<20), 1)
	}
	if a.jsonMode() {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else {
		a.printBenchQuery(res)
	}
	if res.Errors > 0 {
		return exitStatus(1)
	}
	return nil
}

func (a *app) printBenchQuery(r benchQueryResult) {
	w := a.stdout
	where := "remote server"
	if r.InProcess {
		where = fmt.Sprintf("in-process server, %d devices imported in %.1f s", r.Devices, r.SeedSeconds)
	}
	fmt.Fprintf(w, "%d devices in scope %q (%s); HTTP/1.1 keep-alive, %d connections for concurrency %d, GOMAXPROCS %d\n",
		r.Devices, r.Scope, where, r.Connections, r.Concurrency, r.GOMAXPROCS)
	fmt.Fprintf(w, "%-12s %8s %9s %8s %8s %8s %8s %7s %6s  %s\n", "query", "requests", "rate/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "items", "errors", "example")
	for _, s := range r.Queries {
		fmt.Fprintf(w, "%-12s %8d %9.0f %8.2f %8.2f %8.2f %8.2f %7.0f %6d  %s\n",
			s.Name, s.Requests, s.Rate, s.P50, s.P95, s.P99, s.Max, s.Items, s.Errors, s.Example)
	}
	fmt.Fprintf(w, "walked %d devices in pages of 1000\n", r.Walked)
	if r.InProcess {
		fmt.Fprintf(w, "memory: Go heap in use %.1f MiB, process RSS %.1f MiB (server and client)\n", r.HeapMiB, r.RSSMiB)
	}
	for _, s := range r.Queries {
		for _, code := range slices.Sorted(mapsKeys(s.ErrorCodes)) {
			fmt.Fprintf(w, "error: %s: %s x%d\n", s.Name, code, s.ErrorCodes[code])
		}
		if s.Mismatch != "" {
			fmt.Fprintf(w, "error: %s: first mismatch: %s\n", s.Name, s.Mismatch)
		}
	}
}

// seedDevices imports n devices into scope through the registry's bulk
// import, as "gatehouse import" would: dev-0000000 ..., tags site (50
// values) and model (13 values), a small config; one device in 20 active
// and one in 100 quarantined, so the state filter has something to find.
func seedDevices(ctx context.Context, ls *localServer, scope string, n int) error {
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		bw.WriteString("id,state,tags.site,tags.model,config\n")
		for i := range n {
			state := gatehouse.StateProvisioned
			switch {
			case i%20 == 0:
				state = gatehouse.StateActive
			case i%100 == 1:
				state = gatehouse.StateQuarantined
			}
			fmt.Fprintf(bw, "dev-%07d,%s,site-%d,model-%d,\"{\"\"n\"\":%d}\"\n", i, state, i%50, i%13, i)
		}
		pw.CloseWithError(bw.Flush())
	}()
	defer pr.Close()
	var rejected []registry.ImportResult
	sum, err := ls.srv.Registry().ImportDevices(ctx, ls.admin, scope,
		registry.ImportRequest{Mode: registry.ImportCreate, Format: registry.ImportCSV, Body: pr},
		func(rs []registry.ImportResult) error {
			for _, r := range rs {
				if !r.OK && len(rejected) < 3 {
					rejected = append(rejected, r)
				}
			}
			return nil
		})
	switch {
	case err != nil:
		return fmt.Errorf("seed devices: %w", err)
	case !sum.Complete || sum.Created != n:
		return fmt.Errorf("seed devices: %d of %d created (%+v, first rejections %+v)", sum.Created, n, sum.Error, rejected)
	}
	return nil
}

// queryClient sends the benchmark's requests: HTTP/1.1 over kept-open TLS
// connections, as many idle connections kept as there are clients.
type queryClient struct {
	base, auth string
	hc         *http.Client
	dials      atomic.Int64
	conc       int
}

func newQueryClient(base, token string, roots *x509.CertPool, concurrency int) *queryClient {
	q := &queryClient{base: base, auth: "Bearer " + token, conc: concurrency}
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	q.hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			q.dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     cfg,
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		MaxConnsPerHost:     concurrency,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}, Timeout: 2 * time.Minute}
	return q
}

func (q *queryClient) close() { q.hc.CloseIdleConnections() }

// get sends one GET and returns the status, the body and the time until
// the body was read in full.
func (q *queryClient) get(ctx context.Context, path string) (int, []byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, q.base+path, nil)
	if err != nil {
		return 0, nil, 0, err
	}
	req.Header.Set("Authorization", q.auth)
	req.Header.Set("Accept", "application/json")
	start := time.Now()
	resp, err := q.hc.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	body, err := io.ReadAll(resp.Body)
	d := time.Since(start)
	resp.Body.Close()
	return resp.StatusCode, body, d, err
}

// getJSON reads one answer the benchmark needs before it starts.
func (q *queryClient) getJSON(ctx context.Context, path string, v any) error {
	code, body, _, err := q.get(ctx, path)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, code, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}

// warm opens every client's connection: conc requests at once.
func (q *queryClient) warm(ctx context.Context, path string) error {
	var wg sync.WaitGroup
	errs := make([]error, q.conc)
	for i := range q.conc {
		wg.Go(func() {
			code, _, _, err := q.get(ctx, path)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("GET %s: status %d", path, code)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// queryKind makes the i-th request of one query: its path, and a check of
// its answer that returns the number of items in it.
type queryKind struct {
	name     string
	requests int // 0: --requests
	req      func(i int) (path string, check func([]byte) (items int, err error))
}

// measure sends n requests of k from conc clients. The answers are checked
// after the run (up to checkBudget bytes of them held; past it, at once), so
// that the client's JSON decoding does not compete with the server for the
// cores while the latencies are taken.
func (q *queryClient) measure(ctx context.Context, k queryKind, n, conc int) benchQueryStat {
	st := benchQueryStat{Name: k.name, Requests: n, ErrorCodes: map[string]int{}}
	st.Example, _ = k.req(0)
	type answer struct {
		path  string
		body  []byte
		d     time.Duration
		check func([]byte) (int, error)
	}
	var (
		next    atomic.Int64
		held    atomic.Int64
		mu      sync.Mutex
		answers []answer
		wg      sync.WaitGroup
	)
	start := time.Now()
	for range conc {
		wg.Go(func() {
			var local []answer
			codes := map[string]int{}
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					break
				}
				path, check := k.req(i)
				code, body, d, err := q.get(ctx, path)
				switch {
				case err != nil:
					codes["transport"]++
				case code != http.StatusOK:
					codes["http_"+strconv.Itoa(code)]++
				default:
					a := answer{path, body, d, check}
					if held.Add(int64(len(body))) > checkBudget {
						// Too much held: check it now, keep only the outcome.
						nItems, err := check(body)
						a.body, a.check = nil, func([]byte) (int, error) { return nItems, err }
					}
					local = append(local, a)
				}
			}
			mu.Lock()
			answers = append(answers, local...)
			for c, m := range codes {
				st.ErrorCodes[c] += m
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	lat := make([]time.Duration, 0, len(answers))
	var items int64
	for _, a := range answers {
		nItems, err := a.check(a.body)
		if err != nil {
			st.ErrorCodes["mismatch"]++
			if st.Mismatch == "" {
				st.Mismatch = a.path + ": " + err.Error()
			}
			continue
		}
		lat = append(lat, a.d)
		items += int64(nItems)
	}
	st.finish(lat, items, elapsed)
	return st
}

// checkBudget bounds the answers one query holds until its run ends.
const checkBudget = 256 << 20

// finish fills in the figures from the successful requests' latencies.
func (st *benchQueryStat) finish(lat []time.Duration, items int64, elapsed time.Duration) {
	for _, m := range st.ErrorCodes {
		st.Errors += m
	}
	if len(st.ErrorCodes) == 0 {
		st.ErrorCodes = nil
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		st.Rate = round(float64(len(lat))/elapsed.Seconds(), 1)
		st.P50, st.P95, st.P99 = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.95)), ms(percentile(lat, 0.99))
		st.Max = ms(lat[len(lat)-1])
		st.Items = round(float64(items)/float64(len(lat)), 1)
	}
}

// benchWalk is the walk's figures and the number of devices it listed.
type benchWalk struct {
	stat   benchQueryStat
	walked int64
}

// walk lists the scope from its first device in pages of 1000, one page
// after the other, and returns the cursors it was given (each the start of
// a deep page).
func (q *queryClient) walk(ctx context.Context, scopePath string, maxPages int) (benchWalk, []string) {
	const pageSize = 1000
	w := benchWalk{stat: benchQueryStat{Name: "walk", Example: scopePath + "/devices?limit=1000&cursor=...", ErrorCodes: map[string]int{}}}
	var (
		lat     []time.Duration
		cursors []string
		cursor  string
		lastID  string
	)
	start := time.Now()
	for range maxPages {
		path := scopePath + "/devices?limit=" + strconv.Itoa(pageSize)
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		w.stat.Requests++
		code, body, d, err := q.get(ctx, path)
		if err != nil {
			w.stat.ErrorCodes["transport"]++
			break
		}
		if code != http.StatusOK {
			w.stat.ErrorCodes["http_"+strconv.Itoa(code)]++
			break
		}
		var p benchPage
		if err := json.Unmarshal(body, &p); err != nil || len(p.Items) == 0 ||
			(p.NextCursor != "" && len(p.Items) != pageSize) || p.Items[0].ID <= lastID || !idsAscending(p.Items) {
			w.stat.ErrorCodes["mismatch"]++
			w.stat.Mismatch = path + ": not a page of devices in ID order after the previous one"
			break
		}
		lat = append(lat, d)
		w.walked += int64(len(p.Items))
		lastID = p.Items[len(p.Items)-1].ID
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
		cursors = append(cursors, cursor)
	}
	w.stat.finish(lat, w.walked, time.Since(start))
	return w, cursors
}

// benchPage is the part of a device page the checks read.
type benchPage struct {
	Items      []benchDevice `json:"items"`
	NextCursor string        `json:"nextCursor"`
}

type benchDevice struct {
	ID    string            `json:"id"`
	State string            `json:"state"`
	Tags  map[string]string `json:"tags"`
}

func idsAscending(items []benchDevice) bool {
	for i := 1; i < len(items); i++ {
		if items[i].ID <= items[i-1].ID {
			return false
		}
	}
	return true
}

// checkPage checks a device page: want items (-1: at least one), IDs in
// ascending order, each item accepted by match (nil: any).
func checkPage(want int64, match func(*benchDevice) bool) func([]byte) (int, error) {
	return func(body []byte) (int, error) {
		var p benchPage
		if err := json.Unmarshal(body, &p); err != nil {
			return 0, fmt.Errorf("decode page: %w", err)
		}
		n := int64(len(p.Items))
		if want >= 0 && n != want || want < 0 && n == 0 {
			return 0, fmt.Errorf("page of %d devices, want %d", n, want)
		}
		if !idsAscending(p.Items) {
			return 0, fmt.Errorf("page not in ID order")
		}
		for i := range p.Items {
			if match != nil && !match(&p.Items[i]) {
				return 0, fmt.Errorf("device %s does not match the filter", p.Items[i].ID)
			}
		}
		return int(n), nil
	}
}

// checkCounts checks a count's total against the scope's device count.
func checkCounts(total int64) func([]byte) (int, error) {
	return func(body []byte) (int, error) {
		var c registry.DeviceCounts
		if err := json.Unmarshal(body, &c); err != nil {
			return 0, fmt.Errorf("decode counts: %w", err)
		}
		var sum int64
		for _, n := range c.Counts {
			sum += n
		}
		if c.Total != total || sum != total {
			return 0, fmt.Errorf("counts total %d (sum %d), want %d", c.Total, sum, total)
		}
		return 0, nil
	}
}

func keysOf[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// processRSS is this process's resident set in bytes (Linux; 0 elsewhere).
func processRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
