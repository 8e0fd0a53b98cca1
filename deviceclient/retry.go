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
//
// Every transport maps its answers onto HTTP statuses, so that one
// classification serves all: a CoAP 4.01 is 401, 5.03 is 503 (Max-Age is
// the Retry-After); an MQTT CONNACK 0x86 (bad user name or password) is
// 401, 0x87 (not authorized) and 0x8A (banned) 403, 0x9F (connection rate
// exceeded) 429, 0x88 (server unavailable) 503; a native MQTT failure's
// code gets the status the HTTPS API gives it; a DPS MQTT answer has its
// status in the topic. A failed DTLS handshake (which over PSK is what a
// wrong key or an unknown identity looks like) is 401.
type Error struct {
	Protocol   Protocol      // the protocol that failed
	Status     int           // HTTP status, or its equivalent; 0 for a transport failure
	Code       string        // the server's code (native: "unauthenticated"; DPS: "401002"), or "transport"
	Message    string        // the server's message
	RetryAfter time.Duration // from Retry-After (CoAP: Max-Age; MQTT: retry-after), if the server sent one
	Err        error         // the underlying transport error, if any
}

func (e *Error) Error() string {
	p := "deviceclient: "
	if e.Protocol != "" {
		p += string(e.Protocol) + ": "
	}
	if e.Status == 0 {
		return fmt.Sprintf("%s%s: %v", p, e.Code, e.Err)
	}
	if e.Message == "" {
		return fmt.Sprintf("%s%d %s", p, e.Status, e.Code)
	}
	return fmt.Sprintf("%s%d %s: %s", p, e.Status, e.Code, e.Message)
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

// fallsThrough reports whether err, over one protocol, should move the
// device on to the next: the server could not be reached or could not
// answer (a transport failure, 408, 5xx). A 429 does not: the server is
// there and asks the device to wait, whatever the protocol.
func fallsThrough(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable() && e.Status != http.StatusTooManyRequests
}

// fallback runs op over the protocols in order, within c's retries: each
// round tries them from the one last answered (first: the first), moving
// on while a protocol fails in a way that falls through, and ends at the
// first success or refusal; a round that fails retryably is retried
// after the backoff.
func (c *Client) fallback(ctx context.Context, protos []Protocol, op func(Protocol) error) error {
	start := 0
	return c.cfg.Retry.do(ctx, c.cfg.OnRetry, func() error {
		var err error
		for i := range protos {
			k := (start + i) % len(protos)
			p := protos[k]
			err = op(p)
			var e *Error
			if errors.As(err, &e) && e.Protocol == "" {
				e.Protocol = p
			}
			if err == nil || ctx.Err() != nil || !fallsThrough(err) {
				if err != nil && e != nil && e.Status != 0 {
					start = k
				}
				return err
			}
			if i+1 < len(protos) && c.cfg.OnFallback != nil {
				c.cfg.OnFallback(p, protos[(k+1)%len(protos)], err)
			}
		}
		return err
	})
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
