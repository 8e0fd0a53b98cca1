package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// Bench runs the store benchmarks. Each sub-benchmark makes one store with
// newStore and reuses it across the b.N ramp-up, so setup (10k devices for
// Get and List) is paid once.
//
// Reported metrics beyond ns/op: ops/s for the write benchmarks (wall-clock
// throughput of all goroutines together), p50-ns and p99-ns per-operation
// latency for the parallel ones.
func Bench(b *testing.B, newStore NewStore) {
	b.Run("Create", func(b *testing.B) { benchCreate(b, lazyStore(b, newStore, nil)) })
	b.Run("Get", func(b *testing.B) { benchGet(b, lazyStore(b, newStore, withDevices(10000))) })
	b.Run("List", func(b *testing.B) { benchList(b, lazyStore(b, newStore, withDevices(10000))) })
	b.Run("Transition", func(b *testing.B) { benchTransition(b, lazyStore(b, newStore, withDevices(10000)), false) })
	b.Run("TransitionParallel", func(b *testing.B) { benchTransition(b, lazyStore(b, newStore, withDevices(10000)), true) })
	b.Run("CreateCredential", func(b *testing.B) { benchCreateCredential(b, lazyStore(b, newStore, nil)) })
	b.Run("ListCredentialsExpiring", func(b *testing.B) { benchListExpiring(b, lazyStore(b, newStore, withCredentials(10000))) })
}

const benchScope = "bench"

// lazyStore returns a function that makes the store on first use, on
// parent so that it outlives each b.N round, and fills it (fill may be nil).
func lazyStore(parent *testing.B, newStore NewStore, fill func(testing.TB, gatehouse.Store)) func() gatehouse.Store {
	var once sync.Once
	var s gatehouse.Store
	return func() gatehouse.Store {
		once.Do(func() {
			s = newStore(parent)
			createScopes(parent, s, benchScope)
			if fill != nil {
				fill(parent, s)
			}
		})
		return s
	}
}

// inBatches calls create with records 0 to n-1, made by record, 500 at a
// time.
func inBatches[T any](n int, record func(i int) T, create func(batch ...T)) {
	for i := 0; i < n; i += 500 {
		batch := make([]T, 0, 500)
		for j := i; j < i+500 && j < n; j++ {
			batch = append(batch, record(j))
		}
		create(batch...)
	}
}

// withDevices fills a bench store with n devices, dev-000000 on.
func withDevices(n int) func(testing.TB, gatehouse.Store) {
	return func(tb testing.TB, s gatehouse.Store) {
		inBatches(n, func(i int) *gatehouse.Device { return benchDevice(fmt.Sprintf("dev-%06d", i), i) },
			func(ds ...*gatehouse.Device) { createDevices(tb, s, ds...) })
	}
}

// withCredentials fills a bench store with n credentials.
func withCredentials(n int) func(testing.TB, gatehouse.Store) {
	return func(tb testing.TB, s gatehouse.Store) {
		// Serial-like IDs: ID order is not notAfter order.
		inBatches(n, func(i int) *gatehouse.Credential {
			return benchCredential(fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15), i)
		}, func(cs ...*gatehouse.Credential) { createCredentials(tb, s, cs...) })
	}
}

var envs = []string{"prod", "staging", "dev"}

// benchDevice is a device as the registry creates it: a couple of tags and
// a small config.
func benchDevice(id string, i int) *gatehouse.Device {
	d := newDevice(benchScope, id, map[string]string{
		"env":  envs[i%len(envs)],
		"site": fmt.Sprintf("site-%d", i%50),
	})
	d.Config = []byte(`{"interval":60,"mode":"normal"}`)
	return d
}

// latencies collects per-operation durations from parallel goroutines.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(ds []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, ds...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	q := func(p float64) float64 { return float64(l.all[int(p*float64(len(l.all)-1))].Nanoseconds()) }
	b.ReportMetric(q(0.50), "p50-ns")
	b.ReportMetric(q(0.99), "p99-ns")
}

func reportRate(b *testing.B, unit string) {
	if e := b.Elapsed(); e > 0 {
		b.ReportMetric(float64(b.N)/e.Seconds(), unit)
	}
}

var benchSeq atomic.Int64

// benchParallel runs operations from parallel goroutines and reports
// their rate (per second, as unit) and latency percentiles. goroutines is
// how many in all (0: the testing default, GOMAXPROCS). next prepares an
// operation, untimed, with the goroutine's own random source, and returns
// the timed call; an error from one fails the benchmark and stops its
// goroutine.
func benchParallel(b *testing.B, goroutines int, unit string, next func(r *rand.Rand) func() error) {
	var lat latencies
	if goroutines > 0 {
		b.SetParallelism(max(1, goroutines/maxProcs()))
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		var ds []time.Duration
		for pb.Next() {
			op := next(r)
			start := time.Now()
			err := op()
			ds = append(ds, time.Since(start))
			if err != nil {
				b.Error(err)
				return
			}
		}
		lat.add(ds)
	})
	reportRate(b, unit)
	lat.report(b)
}

// benchWriters is how many goroutines the parallel write benchmarks run.
const benchWriters = 64

func benchCreate(b *testing.B, store func() gatehouse.Store) {
	s := store()
	ctx := context.Background()
	benchParallel(b, benchWriters, "creates/s", func(*rand.Rand) func() error {
		i := int(benchSeq.Add(1))
		d := benchDevice(fmt.Sprintf("new-%09d", i), i)
		return func() error {
			err := s.Update(ctx, func(tx gatehouse.Tx) error {
				if err := tx.CreateDevice(d); err != nil {
					return err
				}
				return tx.AppendEvent(&gatehouse.Event{
					Scope: benchScope, Type: gatehouse.EventDeviceCreated, Time: d.CreatedAt,
					Actor: "token:bench", Subject: gatehouse.DeviceSubject(d.ID), Data: []byte(`{"state":"provisioned"}`),
				})
			})
			if err != nil {
				return fmt.Errorf("create: %w", err)
			}
			return nil
		}
	})
}

func benchGet(b *testing.B, store func() gatehouse.Store) {
	s := store()
	ctx := context.Background()
	benchParallel(b, 0, "gets/s", func(r *rand.Rand) func() error {
		id := fmt.Sprintf("dev-%06d", r.IntN(10000))
		return func() error {
			if _, err := s.GetDevice(ctx, benchScope, id); err != nil {
				return fmt.Errorf("GetDevice(%s): %w", id, err)
			}
			return nil
		}
	})
}

func benchList(b *testing.B, store func() gatehouse.Store) {
	s := store()
	ctx := context.Background()
	filters := []gatehouse.DeviceFilter{
		{Scope: benchScope, Limit: 100, Selectors: []gatehouse.TagSelector{{Key: "env", Op: gatehouse.SelEq, Values: []string{"prod"}}}},
		{Scope: benchScope, Limit: 100, Selectors: []gatehouse.TagSelector{{Key: "site", Op: gatehouse.SelIn, Values: []string{"site-7", "site-8"}}}},
		{Scope: benchScope, Limit: 100, Selectors: []gatehouse.TagSelector{{Key: "env", Op: gatehouse.SelEq, Values: []string{"prod"}}}, After: "dev-005000"},
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		f := filters[i%len(filters)]
		got, err := s.ListDevices(ctx, f)
		if err != nil {
			b.Fatalf("ListDevices: %v", err)
		}
		if len(got) != 100 {
			b.Fatalf("ListDevices: got %d devices, want 100", len(got))
		}
	}
}

// benchTransition is the registry's state change: read the device, change
// its state, record the history entry and the event, all in one Update.
func benchTransition(b *testing.B, store func() gatehouse.Store, parallel bool) {
	s := store()
	ctx := context.Background()
	var next atomic.Int64
	transition := func() error {
		id := fmt.Sprintf("dev-%06d", next.Add(1)%10000)
		return s.Update(ctx, func(tx gatehouse.Tx) error {
			d, err := tx.GetDevice(benchScope, id)
			if err != nil {
				return err
			}
			from := d.State
			to := gatehouse.StateInactive
			if from == gatehouse.StateInactive {
				to = gatehouse.StateActive
			}
			prev := d.ETag
			t := now()
			d.State, d.UpdatedAt, d.ETag = to, t, fmt.Sprint(t.UnixNano())
			if err := tx.UpdateDevice(d, prev); err != nil {
				return err
			}
			if err := tx.AddStateChange(benchScope, id, &gatehouse.StateChange{From: from, To: to, Actor: "token:bench", Time: t}); err != nil {
				return err
			}
			return tx.AppendEvent(&gatehouse.Event{Scope: benchScope, Type: gatehouse.EventDeviceStateChanged, Time: t, Actor: "token:bench", Subject: gatehouse.DeviceSubject(id)})
		})
	}
	b.ResetTimer()
	if !parallel {
		for b.Loop() {
			if err := transition(); err != nil {
				b.Fatalf("transition: %v", err)
			}
		}
	} else {
		b.SetParallelism(max(1, benchWriters/maxProcs()))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := transition(); err != nil {
					b.Errorf("transition: %v", err)
					return
				}
			}
		})
	}
	reportRate(b, "transitions/s")
}

func maxProcs() int { return runtime.GOMAXPROCS(0) }

// benchCredential is an issued certificate as the CA records it; its
// notAfter is spread over a year from credentialBase.
func benchCredential(id string, i int) *gatehouse.Credential {
	c := newCredential(benchScope, id, fmt.Sprintf("dev-%06d", i%10000))
	c.NotAfter = timePtr(credentialBase.Add(time.Duration(i%365) * 24 * time.Hour))
	c.CertDER = der(byte(i), 700) // about the size of an ECDSA P-256 certificate
	return c
}

// benchCreateCredential is issuing a certificate: the credential and its
// event in one Update, from many goroutines at once.
func benchCreateCredential(b *testing.B, store func() gatehouse.Store) {
	s := store()
	ctx := context.Background()
	benchParallel(b, benchWriters, "creates/s", func(*rand.Rand) func() error {
		i := int(benchSeq.Add(1))
		c := benchCredential(fmt.Sprintf("cred-%012d", i), i)
		return func() error {
			err := s.Update(ctx, func(tx gatehouse.Tx) error {
				if err := tx.CreateCredential(c); err != nil {
					return err
				}
				return tx.AppendEvent(&gatehouse.Event{
					Scope: benchScope, Type: gatehouse.EventCredentialIssued, Time: c.CreatedAt,
					Actor: "token:bench", Subject: gatehouse.DeviceSubject(c.DeviceID), Data: []byte(`{"kind":"x509"}`),
				})
			})
			if err != nil {
				return fmt.Errorf("create credential: %w", err)
			}
			return nil
		}
	})
}

// benchListExpiring is the expiry sweeper's query: the active credentials
// expiring within 14 days (about 4% of 10k), one page of up to 100.
func benchListExpiring(b *testing.B, store func() gatehouse.Store) {
	s := store()
	ctx := context.Background()
	before := timePtr(credentialBase.Add(14 * 24 * time.Hour))
	f := gatehouse.CredentialFilter{Scope: benchScope, Statuses: []gatehouse.CredentialStatus{gatehouse.CredentialActive}, ExpiringBefore: before, Limit: 100}
	b.ResetTimer()
	for b.Loop() {
		got, err := s.ListCredentials(ctx, f)
		if err != nil {
			b.Fatalf("ListCredentials: %v", err)
		}
		if len(got) != 100 {
			b.Fatalf("ListCredentials: got %d credentials, want 100", len(got))
		}
	}
}
