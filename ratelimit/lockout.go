package ratelimit

import (
	"math"
	"time"
)

// Lockout shuts a key out after repeated failures: after threshold
// consecutive failures the key is locked for base, and each further failure
// doubles that, up to max. A success clears the key. A key that has been
// quiet (no failure, no lock) for max is forgotten, so rare failures spread
// over months never add up to a lockout. It keeps at most maxKeys keys and
// is safe for concurrent use.
//
// Callers Check before doing the work (verifying a token), and report the
// outcome with Failure or Success. A failure reported while locked extends
// the lock.
type Lockout struct {
	threshold int
	base, max time.Duration
	now       func() time.Time
	epoch     time.Time
	t         *table[lockState]
}

type lockState struct {
	failures    int   // consecutive
	lastFailure int64 // nanoseconds since epoch
	lockedUntil int64 // nanoseconds since epoch; 0 if never locked
}

// NewLockout returns a Lockout; see the type's documentation. now is the
// clock (nil: time.Now). A max below base is taken as base. It panics
// unless threshold >= 1, base > 0 and maxKeys >= 1.
func NewLockout(threshold int, base, max time.Duration, maxKeys int, now func() time.Time) *Lockout {
	if threshold < 1 || base <= 0 {
		panic("ratelimit: threshold must be at least 1 and base positive")
	}
	if max < base {
		max = base
	}
	if now == nil {
		now = time.Now
	}
	return &Lockout{threshold: threshold, base: base, max: max, now: now, epoch: now(), t: newTable[lockState](maxKeys)}
}

// Check reports whether key is locked out now, and for how long.
func (l *Lockout) Check(key string) (locked bool, retryAfter time.Duration) {
	now := int64(l.now().Sub(l.epoch))
	s := l.t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.get(key)
	if st == nil || now >= st.lockedUntil {
		return false, 0
	}
	return true, time.Duration(st.lockedUntil - now)
}

// Failure records a failed attempt by key and returns how long key is now
// locked out for (0 if it is not).
func (l *Lockout) Failure(key string) (lockedFor time.Duration) {
	now := int64(l.now().Sub(l.epoch))
	s := l.t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.get(key)
	if st == nil {
		st = s.put(key, func(st *lockState) bool { return now < st.lockedUntil })
	} else if l.quiet(st, now) {
		*st = lockState{}
	}
	st.failures++
	st.lastFailure = now
	if st.failures < l.threshold {
		return 0
	}
	d := l.base
	for i := st.failures - l.threshold; i > 0 && d < l.max; i-- {
		if d > l.max/2 {
			d = l.max
			break
		}
		d *= 2
	}
	until := now + int64(d)
	if until < now {
		until = math.MaxInt64 // saturate rather than wrap
	}
	st.lockedUntil = max(st.lockedUntil, until)
	return time.Duration(st.lockedUntil - now)
}

// quiet reports whether st has seen neither a failure nor a lock for max.
func (l *Lockout) quiet(st *lockState, now int64) bool {
	return now-max(st.lastFailure, st.lockedUntil) >= int64(l.max)
}

// Success clears key: its failures are forgotten and any lock lifted.
func (l *Lockout) Success(key string) {
	s := l.t.shard(key)
	s.mu.Lock()
	s.remove(key)
	s.mu.Unlock()
}

// Len returns how many keys the lockout holds (at most maxKeys).
func (l *Lockout) Len() int { return l.t.len() }
