package adminclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

func eventsPath(scope string) string { return "/v1/scopes/" + seg(scope) + "/events" }

// Events returns up to limit events of scope with a sequence number greater
// than after (0 for the start of the log), oldest first. limit 0 means the
// server's default page size.
func (c *Client) Events(ctx context.Context, scope string, after int64, limit int) ([]*gatehouse.Event, error) {
	q := url.Values{"after": {strconv.FormatInt(after, 10)}}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	items, _, err := getList[*gatehouse.Event](ctx, c, request{method: http.MethodGet, path: eventsPath(scope), query: q})
	return items, err
}

// StreamEvents follows scope's event log live, calling fn for every event
// with a sequence number greater than after, in order, each exactly once.
//
// It runs until ctx ends (returning ctx's error) or fn returns an error
// (returning that error). When an established stream drops, it reconnects
// with exponential backoff and resumes where it left off (Last-Event-ID), so
// fn sees no gap and no repeat. Errors that retrying cannot fix are
// returned at once: a failure of the first connection (wrong URL,
// untrusted certificate) and error responses other than 429 and 5xx
// (a revoked token, an unknown scope).
func (c *Client) StreamEvents(ctx context.Context, scope string, after int64, fn func(*gatehouse.Event) error) error {
	if after < 0 {
		return fmt.Errorf("StreamEvents: after must be >= 0, not %d", after)
	}
	s := &stream{c: c, scope: scope, last: after, fn: fn}
	backoff := c.minBackoff
	for attempt := 0; ; attempt++ {
		connected, err := s.run(ctx)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		var fnErr callbackError
		if errors.As(err, &fnErr) {
			return fnErr.err
		}
		if !retryable(err) || attempt == 0 && !connected {
			return err
		}
		if connected {
			backoff = c.minBackoff // it worked for a while: start over gently
		}
		wait := backoff
		if s.retry > 0 {
			wait = max(wait, s.retry)
		}
		// Jitter spreads the reconnections of many clients after a restart.
		wait = wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, c.maxBackoff)
	}
}

// retryable reports whether reconnecting may fix err.
func retryable(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status == http.StatusTooManyRequests || apiErr.Status >= 500
	}
	return true // transport errors, dropped streams, garbled frames
}

// callbackError marks an error returned by the caller's fn.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// stream is one StreamEvents call's state across connections.
type stream struct {
	c     *Client
	scope string
	last  int64 // highest sequence number delivered
	fn    func(*gatehouse.Event) error
	retry time.Duration // the server's advice (retry: field), if any
}

// maxSSELine bounds one line of the stream (an event's JSON).
const maxSSELine = 1 << 20

// errStreamEnded reports a stream the server closed.
var errStreamEnded = errors.New("event stream ended")

// run makes one connection and reads events until it breaks. connected
// reports whether the server accepted the stream.
func (s *stream) run(ctx context.Context) (connected bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := http.Header{"Accept": {"text/event-stream"}, "Cache-Control": {"no-cache"}}
	if s.last > 0 {
		h.Set("Last-Event-ID", strconv.FormatInt(s.last, 10))
	}
	q := url.Values{"after": {strconv.FormatInt(s.last, 10)}}
	req, err := s.c.newRequest(ctx, request{method: http.MethodGet, path: eventsPath(s.scope), query: q, header: h})
	if err != nil {
		return false, err
	}
	resp, err := s.c.send(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, fmt.Errorf("server answered an event stream request with %q, not text/event-stream", ct)
	}
	return true, s.read(resp.Body)
}

// read parses server-sent events (the WHATWG format) from r and delivers
// them. It returns when r ends or breaks, or fn fails.
func (s *stream) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	var (
		data    strings.Builder
		hasData bool
		typ     string
	)
	for sc.Scan() {
		line := sc.Text()
		if line == "" { // dispatch
			if hasData {
				if err := s.dispatch(typ, data.String()); err != nil {
					return err
				}
			}
			data.Reset()
			hasData, typ = false, ""
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // comment: a keepalive
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "event":
			typ = value
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil && ms >= 0 {
				s.retry = min(time.Duration(ms)*time.Millisecond, s.c.maxBackoff)
			}
		case "id":
			// The event's JSON carries its seq, which is what resumption uses.
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read event stream: %w", err)
	}
	return errStreamEnded
}

// dispatch decodes one event and hands it to fn unless it was seen before.
func (s *stream) dispatch(typ, data string) error {
	var e gatehouse.Event
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		return fmt.Errorf("event stream: undecodable %q event: %w", typ, err)
	}
	if e.Seq <= s.last {
		return nil // a repeat after reconnecting, or a frame that is no event (seq 0)
	}
	if err := s.fn(&e); err != nil {
		return callbackError{err}
	}
	s.last = e.Seq
	return nil
}
