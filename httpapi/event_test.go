package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// sseEvent is one event read off a stream.
type sseEvent struct {
	id, event, data string
	comment         string
}

// stream is an open event stream.
type stream struct {
	res    *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// openStream starts an SSE request and reads it in the background until the
// test ends.
func (e *env) openStream(path, token string, hdr ...string) *stream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.t.Context())
	req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		cancel()
		e.t.Fatalf("open stream: %v", err)
	}
	s := &stream{res: res, events: make(chan sseEvent, 100), cancel: cancel}
	e.t.Cleanup(func() { cancel(); res.Body.Close() })
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != (sseEvent{}) {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.comment = strings.TrimSpace(line[1:])
			default:
				k, v, _ := strings.Cut(line, ": ")
				switch k {
				case "id":
					ev.id = v
				case "event":
					ev.event = v
				case "data":
					ev.data = v
				}
			}
		}
	}()
	return s
}

// next returns the next event that has an id, skipping comments and hints.
func (s *stream) next(t *testing.T) sseEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if ev.id != "" {
				return ev
			}
		case <-timeout:
			t.Fatal("no event within 10s")
		}
	}
}

func checkEvent(t *testing.T, ev sseEvent, seq int64, typ string) gatehouse.Event {
	t.Helper()
	var e gatehouse.Event
	if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
		t.Fatalf("event data %q: %v", ev.data, err)
	}
	if ev.id != strconv.FormatInt(seq, 10) || e.Seq != seq || ev.event != typ || e.Type != typ {
		t.Fatalf("event id=%s event=%s data=%s, want seq %d type %s", ev.id, ev.event, ev.data, seq, typ)
	}
	return e
}

func TestEventStream(t *testing.T) {
	e := newEnv(t, nil)
	// The log starts with scope.created (seq 1) and ca.created (seq 2)
	// from the bootstrap.
	s := e.openStream("/v1/scopes/default/events", e.admin)
	if ct := s.res.Header.Get("Content-Type"); s.res.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("stream answered %d %q", s.res.StatusCode, ct)
	}
	checkEvent(t, s.next(t), 1, gatehouse.EventScopeCreated)
	checkEvent(t, s.next(t), 2, gatehouse.EventCACreated)

	// A change after the stream started reaches it.
	e.mustDevice("dev-1", nil)
	ev := checkEvent(t, s.next(t), 3, gatehouse.EventDeviceCreated)
	if ev.Subject != "devices/dev-1" || ev.Scope != "default" {
		t.Errorf("event %+v", ev)
	}
	e.setState("dev-1", gatehouse.StateActive).want(t, 200)
	checkEvent(t, s.next(t), 4, gatehouse.EventDeviceStateChanged)
	s.cancel()

	// Resuming after event 3 starts with event 4, whatever after says.
	r := e.openStream("/v1/scopes/default/events?after=0", e.admin, "Last-Event-ID", "3")
	checkEvent(t, r.next(t), 4, gatehouse.EventDeviceStateChanged)
	// after= works without Last-Event-ID.
	a := e.openStream("/v1/scopes/default/events?after=3", e.admin)
	checkEvent(t, a.next(t), 4, gatehouse.EventDeviceStateChanged)
	e.do("DELETE", "/v1/scopes/default/devices/dev-1", e.admin, nil).problem(t, 409, gatehouse.EConflict)
	e.setState("dev-1", gatehouse.StateDecommissioned).want(t, 200)
	checkEvent(t, r.next(t), 5, gatehouse.EventDeviceStateChanged)
	checkEvent(t, a.next(t), 5, gatehouse.EventDeviceStateChanged)
}

// A stream wakes on the poll interval too (events committed by another
// node do not signal this one), and sends keepalives while idle.
func TestEventStreamPollAndKeepalive(t *testing.T) {
	e := newEnv(t, func(r Registry) Registry { return noSignal{r} }, withKeepalive(100*time.Millisecond))

	s := e.openStream("/v1/scopes/default/events?after=2", e.admin)
	deadline := time.After(10 * time.Second)
	for got := false; !got; {
		select {
		case ev := <-s.events:
			got = ev.comment == "keepalive"
		case <-deadline:
			t.Fatal("no keepalive within 10s")
		}
	}
	e.mustDevice("dev-1", nil)
	checkEvent(t, s.next(t), 3, gatehouse.EventDeviceCreated)
}

// A stream whose token is revoked ends at the next keepalive.
func TestEventStreamEndsOnRevoke(t *testing.T) {
	e := newEnv(t, nil, withKeepalive(50*time.Millisecond))
	tok, id := e.mustToken("default", gatehouse.RoleViewer)
	s := e.openStream("/v1/scopes/default/events", tok)
	s.next(t)
	e.do("DELETE", "/v1/scopes/default/tokens/"+id, e.admin, nil).want(t, http.StatusNoContent)
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("the stream outlived its token by 10s")
		}
	}
}

// withKeepalive shortens the keepalive interval for tests.
func withKeepalive(d time.Duration) Option { return func(h *Handler) { h.keepalive = d } }

// noSignal hides this node's commit signal, as if the writer were another node.
type noSignal struct{ Registry }

func (noSignal) EventSignal(string) <-chan struct{} { return nil }

// Close ends streams, so that http.Server.Shutdown can finish.
func TestCloseEndsStreams(t *testing.T) {
	e := newEnv(t, nil)
	s := e.openStream("/v1/scopes/default/events", e.admin)
	s.next(t)
	e.srv.Config.Handler.(*Handler).Close()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				e.do("GET", "/healthz", "", nil).want(t, 200)
				return
			}
		case <-timeout:
			t.Fatal("the stream outlived Close by 10s")
		}
	}
}

// signalSpy records the scopes asked for a commit signal.
type signalSpy struct {
	Registry
	mu     sync.Mutex
	scopes []string
}

func (s *signalSpy) EventSignal(scope string) <-chan struct{} {
	s.mu.Lock()
	s.scopes = append(s.scopes, scope)
	s.mu.Unlock()
	return s.Registry.EventSignal(scope)
}

// A denied stream allocates nothing for the scope it named: the registry
// keeps a channel per scope name, so names must be authorised first.
func TestEventStreamAuthorisesFirst(t *testing.T) {
	spy := &signalSpy{}
	e := newEnv(t, func(r Registry) Registry { spy.Registry = r; return spy })
	other, _ := e.mustToken("default", gatehouse.RoleViewer)
	for _, scope := range []string{"nope", "x-1", "acme"} {
		e.do("GET", "/v1/scopes/"+scope+"/events", other, nil, "Accept", "text/event-stream").problem(t, 404, gatehouse.ENotFound)
		e.do("GET", "/v1/scopes/"+scope+"/events", e.admin, nil, "Accept", "text/event-stream").problem(t, 404, gatehouse.ENotFound)
	}
	spy.mu.Lock()
	defer spy.mu.Unlock()
	if len(spy.scopes) != 0 {
		t.Errorf("EventSignal called for %q before authorisation", spy.scopes)
	}
}

// Server read and write timeouts (2s in these tests) do not cut a stream.
func TestEventStreamOutlivesServerTimeouts(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the server timeouts")
	}
	e := newEnv(t, nil)
	s := e.openStream("/v1/scopes/default/events", e.admin)
	checkEvent(t, s.next(t), 1, gatehouse.EventScopeCreated)
	checkEvent(t, s.next(t), 2, gatehouse.EventCACreated)
	time.Sleep(e.srv.Config.ReadTimeout + e.srv.Config.WriteTimeout + 500*time.Millisecond)
	e.mustDevice("dev-1", nil)
	checkEvent(t, s.next(t), 3, gatehouse.EventDeviceCreated)
}
