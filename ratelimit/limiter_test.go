package ratelimit

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	// Each step advances the clock, then calls Allow(key).
	type step struct {
		advance time.Duration
		key     string
		ok      bool
		retry   time.Duration
	}
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"burst then refill", 2, 3, []step{
			{0, "a", true, 0},
			{0, "a", true, 0},
			{0, "a", true, 0},
			{0, "a", false, 500 * time.Millisecond},
			{100 * time.Millisecond, "a", false, 400 * time.Millisecond},
			{400 * time.Millisecond, "a", true, 0},
			{0, "a", false, 500 * time.Millisecond},
		}},
		{"keys are independent", 1, 1, []step{
			{0, "a", true, 0},
			{0, "a", false, time.Second},
			{0, "b", true, 0},
			{0, "b", false, time.Second},
		}},
		{"refill stops at burst", 1, 2, []step{
			{0, "a", true, 0},
			{0, "a", true, 0},
			{time.Hour, "a", true, 0},
			{0, "a", true, 0},
			{0, "a", false, time.Second},
		}},
		{"slow rate", 1.0 / 60, 1, []step{
			{0, "a", true, 0},
			{0, "a", false, time.Minute},
			{59 * time.Second, "a", false, time.Second},
			{time.Second, "a", true, 0},
		}},
		{"clock steps back", 1, 1, []step{
			{0, "a", true, 0},
			{-time.Hour, "a", false, time.Second},
			{time.Hour, "a", false, time.Second},
			{time.Second, "a", true, 0},
		}},
		{"denials do not drain", 1, 1, []step{
			{0, "a", true, 0},
			{0, "a", false, time.Second},
			{0, "a", false, time.Second},
			{time.Second, "a", true, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			l := New(tt.rate, tt.burst, 100, clock.Now)
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				ok, retry := l.Allow(s.key)
				if ok != s.ok || retry != s.retry {
					t.Errorf("step %d: Allow(%q) = %v, %v; want %v, %v", i, s.key, ok, retry, s.ok, s.retry)
				}
			}
		})
	}
}

func TestNewPanics(t *testing.T) {
	for _, tt := range []struct {
		rate        float64
		burst, keys int
	}{{0, 1, 1}, {-1, 1, 1}, {1, 0, 1}, {1, 1, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%v, %d, %d) did not panic", tt.rate, tt.burst, tt.keys)
				}
			}()
			New(tt.rate, tt.burst, tt.keys, nil)
		}()
	}
}

// Memory stays bounded however many keys come by.
func TestLimiterBounded(t *testing.T) {
	for _, maxKeys := range []int{1, 10, 100, 1000, 10000} {
		t.Run(strconv.Itoa(maxKeys), func(t *testing.T) {
			clock := newFakeClock()
			l := New(1, 5, maxKeys, clock.Now)
			for i := range 10 * maxKeys {
				if ok, _ := l.Allow("src:" + strconv.Itoa(i)); !ok {
					t.Fatalf("new key %d denied", i)
				}
				if i%97 == 0 {
					clock.Advance(time.Millisecond)
				}
			}
			if n := l.Len(); n > maxKeys || n < maxKeys/2 {
				t.Errorf("Len() = %d; want at most %d (and not far below)", n, maxKeys)
			}
			for i := range l.t.shards {
				s := &l.t.shards[i]
				if len(s.index) > cap(s.slots) || cap(s.slots) > maxKeys {
					t.Errorf("shard %d: %d keys, %d slots", i, len(s.index), cap(s.slots))
				}
			}
		})
	}
}

// A full bucket carries no state, so eviction takes it before a drained
// one, even a drained one used less recently.
func TestLimiterEvictsFullBucketsFirst(t *testing.T) {
	clock := newFakeClock()
	l := New(1, 3, 4, clock.Now) // one shard of 4 slots
	for range 3 {
		l.Allow("drained") // 0 tokens left; the least recently used
	}
	for _, k := range []string{"a", "b", "c"} {
		l.Allow(k) // 2 tokens left
	}
	clock.Advance(time.Second) // a, b, c are full again; drained has 1
	if ok, _ := l.Allow("new"); !ok {
		t.Fatal("new key denied")
	}
	if n := l.Len(); n != 4 {
		t.Fatalf("Len() = %d, want 4", n)
	}
	// Still known: one token, not a fresh bucket of three.
	if ok, _ := l.Allow("drained"); !ok {
		t.Fatal("drained: first Allow denied")
	}
	if ok, _ := l.Allow("drained"); ok {
		t.Error("drained bucket was evicted while full ones were left")
	}
}

// With nothing full, the least recently used goes.
func TestLimiterEvictsLRU(t *testing.T) {
	clock := newFakeClock()
	l := New(1, 1, 2, clock.Now)
	l.Allow("old")
	l.Allow("mid")
	l.Allow("old") // old is now the most recent; mid the least
	l.Allow("new") // evicts mid
	if ok, _ := l.Allow("old"); ok {
		t.Error("old was evicted")
	}
	if ok, _ := l.Allow("mid"); !ok {
		t.Error("mid was kept")
	}
}

func TestLimiterConcurrent(t *testing.T) {
	clock := newFakeClock()
	const burst = 50
	l := New(1, burst, 1000, clock.Now)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				if ok, _ := l.Allow("shared"); ok {
					allowed.Add(1)
				}
				l.Allow(fmt.Sprintf("g%d-%d", g, i%100))
			}
		}()
	}
	wg.Wait()
	// The clock never moved: exactly one burst for the shared key.
	if got := allowed.Load(); got != burst {
		t.Errorf("shared key allowed %d times, want %d", got, burst)
	}
	if n := l.Len(); n > 1000 {
		t.Errorf("Len() = %d", n)
	}
}

func TestLimiterAllocs(t *testing.T) {
	l := New(1e9, 1, 100, nil)
	l.Allow("known")
	if n := testing.AllocsPerRun(100, func() { l.Allow("known") }); n != 0 {
		t.Errorf("Allow on a known key: %v allocs, want 0", n)
	}
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() { l.Allow(keys[i%len(keys)]); i++ }); n > 0.1 {
		t.Errorf("Allow with eviction: %v allocs, want 0", n)
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(1e9, 1000, 10000, nil)
	b.ReportAllocs()
	for b.Loop() {
		l.Allow("src:192.0.2.1")
	}
}

// Many goroutines, many keys, most of them known.
func BenchmarkAllowParallel(b *testing.B) {
	l := New(1e9, 1000, 100000, nil)
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = "src:" + strconv.Itoa(i)
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			l.Allow(keys[i%len(keys)])
			i++
		}
	})
}

// A flood of distinct keys, ten times the table: every call evicts.
func BenchmarkAllowParallelEvicting(b *testing.B) {
	const maxKeys = 10000
	l := New(1, 5, maxKeys, nil)
	keys := make([]string, 10*maxKeys)
	for i := range keys {
		keys[i] = "src:" + strconv.Itoa(i)
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			l.Allow(keys[i%len(keys)])
			i++
		}
	})
}
