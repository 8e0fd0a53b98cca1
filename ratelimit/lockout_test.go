package ratelimit

import (
	"math"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestLockout(t *testing.T) {
	const (
		fail    = "fail"
		succeed = "succeed"
		check   = "check"
	)
	// Each step advances the clock, then does op on key and checks the
	// result: for fail, the lock it returns; for check, the remaining lock.
	type step struct {
		advance time.Duration
		op, key string
		want    time.Duration
	}
	tests := []struct {
		name      string
		threshold int
		steps     []step
	}{
		{"below threshold", 3, []step{
			{0, fail, "a", 0},
			{0, fail, "a", 0},
			{0, check, "a", 0},
		}},
		{"threshold then doubling to max", 3, []step{
			{0, fail, "a", 0},
			{0, fail, "a", 0},
			{0, fail, "a", time.Second},
			{0, check, "a", time.Second},
			{time.Second, check, "a", 0},
			{0, fail, "a", 2 * time.Second},
			{2 * time.Second, fail, "a", 4 * time.Second},
			{4 * time.Second, fail, "a", 8 * time.Second},
			{8 * time.Second, fail, "a", 10 * time.Second},
			{10 * time.Second, fail, "a", 10 * time.Second},
			{0, check, "b", 0},
		}},
		{"failure while locked extends", 1, []step{
			{0, fail, "a", time.Second},
			{500 * time.Millisecond, fail, "a", 2 * time.Second},
			{0, check, "a", 2 * time.Second},
		}},
		{"success clears", 2, []step{
			{0, fail, "a", 0},
			{0, fail, "a", time.Second},
			{0, succeed, "a", 0},
			{0, check, "a", 0},
			{0, fail, "a", 0},
			{0, fail, "a", time.Second},
		}},
		{"success on an unknown key", 2, []step{
			{0, succeed, "x", 0},
			{0, check, "x", 0},
		}},
		{"quiet keys are forgotten", 2, []step{
			{0, fail, "a", 0},
			{10 * time.Second, fail, "a", 0},
			{0, fail, "a", time.Second},
			{time.Second + 10*time.Second, fail, "a", 0},
			{0, fail, "a", time.Second},
		}},
		{"not quiet yet", 2, []step{
			{0, fail, "a", 0},
			{10*time.Second - 1, fail, "a", time.Second},
		}},
		{"a lock at max counts as activity", 1, []step{
			{0, fail, "a", time.Second},
			{time.Second, fail, "a", 2 * time.Second},
			{2 * time.Second, fail, "a", 4 * time.Second},
			{4 * time.Second, fail, "a", 8 * time.Second},
			{8 * time.Second, fail, "a", 10 * time.Second},
			// 10s locked, then 9s quiet: still at max.
			{19 * time.Second, fail, "a", 10 * time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			l := NewLockout(tt.threshold, time.Second, 10*time.Second, 100, clock.Now)
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				switch s.op {
				case fail:
					if got := l.Failure(s.key); got != s.want {
						t.Errorf("step %d: Failure(%q) = %v, want %v", i, s.key, got, s.want)
					}
					if locked, got := l.Check(s.key); locked != (s.want > 0) || got != s.want {
						t.Errorf("step %d: Check(%q) after Failure = %v, %v; want %v", i, s.key, locked, got, s.want)
					}
				case succeed:
					l.Success(s.key)
				case check:
					if locked, got := l.Check(s.key); locked != (s.want > 0) || got != s.want {
						t.Errorf("step %d: Check(%q) = %v, %v; want %v", i, s.key, locked, got, s.want)
					}
				}
			}
		})
	}
}

// Doubling near the top of time.Duration neither overflows nor wraps.
func TestLockoutHugeDurations(t *testing.T) {
	clock := newFakeClock()
	const max = time.Duration(math.MaxInt64)
	l := NewLockout(1, 1<<61, max, 10, clock.Now)
	for i, want := range []time.Duration{1 << 61, 1 << 62, max, max} {
		clock.Advance(time.Nanosecond)
		got := l.Failure("a")
		if i < 2 && got != want || got <= 0 || got > max {
			t.Errorf("failure %d: locked for %v, want %v", i+1, got, want)
		}
	}
	if locked, d := l.Check("a"); !locked || d <= 0 {
		t.Errorf("Check = %v, %v", locked, d)
	}
}

func TestNewLockoutPanics(t *testing.T) {
	for _, tt := range []struct {
		threshold, keys int
		base            time.Duration
	}{{0, 1, time.Second}, {1, 1, 0}, {1, 0, time.Second}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewLockout(%d, %v, _, %d) did not panic", tt.threshold, tt.base, tt.keys)
				}
			}()
			NewLockout(tt.threshold, tt.base, time.Minute, tt.keys, nil)
		}()
	}
	// A max below base is base.
	l := NewLockout(1, time.Minute, time.Second, 1, newFakeClock().Now)
	if got := l.Failure("a"); got != time.Minute {
		t.Errorf("got %v, want 1m", got)
	}
}

func TestLockoutBounded(t *testing.T) {
	for _, maxKeys := range []int{1, 100, 10000} {
		t.Run(strconv.Itoa(maxKeys), func(t *testing.T) {
			clock := newFakeClock()
			l := NewLockout(1, time.Minute, time.Hour, maxKeys, clock.Now)
			for i := range 10 * maxKeys {
				l.Failure("reg:" + strconv.Itoa(i))
			}
			if n := l.Len(); n > maxKeys {
				t.Errorf("Len() = %d; want at most %d", n, maxKeys)
			}
		})
	}
}

// Eviction prefers keys that are not locked.
func TestLockoutKeepsLockedKeys(t *testing.T) {
	clock := newFakeClock()
	l := NewLockout(2, time.Minute, time.Hour, 4, clock.Now)
	l.Failure("locked")
	l.Failure("locked") // locked for a minute; least recently used from here
	for i := range 10 {
		l.Failure("probe-" + strconv.Itoa(i)) // one failure each: not locked
	}
	if locked, _ := l.Check("locked"); !locked {
		t.Error("a locked key was evicted while unlocked ones were left")
	}
}

func TestLockoutConcurrent(t *testing.T) {
	clock := newFakeClock()
	const threshold = 5
	l := NewLockout(threshold, time.Second, time.Minute, 1000, clock.Now)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				l.Check("shared")
				l.Failure("shared")
				key := "g" + strconv.Itoa(g) + "-" + strconv.Itoa(i%50)
				l.Failure(key)
				if i%3 == 0 {
					l.Success(key)
				}
				l.Check(key)
			}
		}()
	}
	wg.Wait()
	// 1600 failures on "shared" with the clock stopped: capped at max.
	if locked, d := l.Check("shared"); !locked || d != time.Minute {
		t.Errorf("shared: Check = %v, %v; want locked for 1m", locked, d)
	}
	if n := l.Len(); n > 1000 {
		t.Errorf("Len() = %d", n)
	}
}

func BenchmarkLockoutCheck(b *testing.B) {
	l := NewLockout(5, time.Second, time.Hour, 10000, nil)
	l.Failure("reg:default/dev-1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Check("reg:default/dev-1")
		}
	})
}
