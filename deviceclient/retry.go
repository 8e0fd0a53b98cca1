package deviceclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is a failure the server answered (or a transport failure, with
// Status 0).
type Error struct {
	Status     int           // HTTP status; 0 for a transport failure
	Code       string        // the server's code (native: "unauthenticated"; DPS: "401002"), or "transport"
	Message    string        // the server's message
	RetryAfter time.Duration // from Retry-After, if the server sent one
	Err        error         // the underlying transport error, if any
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("deviceclient: %s: %v", e.Code, e.Err)
	}
	if e.Message == "" {
		return fmt.Sprintf("deviceclient: %d %s", e.Status, e.Code)
	}
	return fmt.Sprintf("deviceclient: %d %s: %s", e.Status, e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether trying again later may succeed: a transport
// failure, 408, 429 or a 5xx other than 501. Refusals (4xx) are permanent.
func (e *Error) Retryable() bool {
	switch {
	case e.Status == 0:
		return true
	case e.Status == http.StatusRequestTimeout, e.Status == http.StatusTooManyRequests:
		return true
	case e.Status >= 500 && e.Status != http.StatusNotImplemented:
		return true
	}
	return false
}

// IsRetryable reports whether err is worth retrying.
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable()
}

// Retry bounds the retries of one operation: exponential backoff with full
// jitter (a random wait between 0 and min(Max, Initial * 2^attempt)), never
// shorter than the server's Retry-After.
type Retry struct {
	Initial  time.Duration // default 500ms
	Max      time.Duration // default 1 minute
	Attempts int           // attempts in all, default 8; 1 disables retries
}

func (r Retry) withDefaults() Retry {
	if r.Initial <= 0 {
		r.Initial = 500 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = time.Minute
	}
	if r.Attempts <= 0 {
		r.Attempts = 8
	}
	return r
}

// backoff is the wait before attempt n+1 (n from 0).
func (r Retry) backoff(n int, retryAfter time.Duration) time.Duration {
	ceil := r.Max
	if n < 30 {
		ceil = min(r.Max, r.Initial<<n)
	}
	d := time.Duration(rand.Int64N(int64(ceil) + 1))
	return max(d, retryAfter)
}

// do runs op until it succeeds, fails permanently, runs out of attempts or
// ctx ends. onRetry, if set, hears of each retry.
func (r Retry) do(ctx context.Context, onRetry func(error, time.Duration), op func() error) error {
	r = r.withDefaults()
	for n := 0; ; n++ {
		err := op()
		if err == nil || !IsRetryable(err) || n+1 >= r.Attempts {
			return err
		}
		var e *Error
		errors.As(err, &e)
		wait := r.backoff(n, e.RetryAfter)
		if onRetry != nil {
			onRetry(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
	}
}

// retryAfter reads Retry-After: seconds, or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
