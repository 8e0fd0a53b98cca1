package ratelimit

import (
	"math"
	"time"
)

// Limiter is a set of token buckets keyed by string ("src:192.0.2.1",
// "reg:default/dev-1"): each key may make burst requests at once and rate
// per second after that. It keeps at most maxKeys buckets and is safe for
// concurrent use.
type Limiter struct {
	rate  float64 // tokens per nanosecond
	burst float64
	now   func() time.Time
	epoch time.Time
	t     *table[bucket]
}

type bucket struct {
	tokens float64
	last   int64 // nanoseconds since epoch
}

// New returns a Limiter that allows rate requests per second per key,
// with bursts of up to burst, keeping at most maxKeys keys. now is the
// clock (nil: time.Now). It panics unless rate > 0, burst >= 1 and
// maxKeys >= 1: callers validate their configuration first.
func New(rate float64, burst int, maxKeys int, now func() time.Time) *Limiter {
	if !(rate > 0) || burst < 1 {
		panic("ratelimit: rate must be positive and burst at least 1")
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{rate: rate / 1e9, burst: float64(burst), now: now, epoch: now(), t: newTable[bucket](maxKeys)}
}

// Allow takes a token from key's bucket. If there is none it returns false
// and how long until there will be one (for a Retry-After header; round it
// up to whole seconds there).
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	now := int64(l.now().Sub(l.epoch))
	s := l.t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.get(key)
	if b == nil {
		b = s.put(key, func(b *bucket) bool { return l.level(b, now) < l.burst })
		*b = bucket{tokens: l.burst, last: now}
	}
	b.tokens = l.level(b, now)
	if now > b.last {
		b.last = now // a clock that steps back refills nothing
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := math.Ceil((1 - b.tokens) / l.rate)
	if wait >= math.MaxInt64 {
		return false, time.Duration(math.MaxInt64)
	}
	return false, time.Duration(wait)
}

// level returns b's tokens at now.
func (l *Limiter) level(b *bucket, now int64) float64 {
	if now <= b.last {
		return b.tokens
	}
	return math.Min(l.burst, b.tokens+float64(now-b.last)*l.rate)
}

// Len returns how many keys the limiter holds (at most maxKeys).
func (l *Limiter) Len() int { return l.t.len() }
