package adminclient

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// fakeServer starts a TLS test server with handler and a client of it.
func fakeServer(t *testing.T, h http.HandlerFunc, opts ...Option) *Client {
	t.Helper()
	ts := httptest.NewTLSServer(h)
	t.Cleanup(ts.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	c, err := New(ts.URL, "gh_test", append([]Option{WithRootCAs(pool)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewURL(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://gatehouse.example.com", true},
		{"https://gatehouse.example.com:8443/", true},
		{"http://127.0.0.1:8443", true},
		{"http://localhost:8443", true},
		{"http://gatehouse.example.com", false},
		{"gatehouse.example.com:8443", false},
		{"ftp://gatehouse.example.com", false},
		{"https://user:pw@gatehouse.example.com", false},
		{"https://gatehouse.example.com/?x=1", false},
		{"", false},
	}
	for _, tt := range tests {
		_, err := New(tt.url, "gh_x")
		if got := err == nil; got != tt.ok {
			t.Errorf("New(%q): err = %v, want ok %v", tt.url, err, tt.ok)
		}
	}
}

func TestWithCAFile(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ts.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644)
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o644)

	c, err := New(ts.URL, "gh_x", WithCAFile(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Health(t.Context()); err != nil {
		t.Errorf("Health with the right CA: %v", err)
	}
	if _, err := New(ts.URL, "gh_x", WithCAFile(bad)); err == nil {
		t.Error("New accepted a CA file with no certificate")
	}
	if _, err := New(ts.URL, "gh_x", WithCAFile(filepath.Join(dir, "missing.pem"))); err == nil {
		t.Error("New accepted a missing CA file")
	}

	// Without the CA the server's certificate is untrusted.
	c, _ = New(ts.URL, "gh_x")
	err = c.Health(t.Context())
	var te *TransportError
	if !errors.As(err, &te) || !te.Certificate() {
		t.Fatalf("Health without the CA: %v, want a certificate TransportError", err)
	}
	if !strings.Contains(err.Error(), ts.URL) {
		t.Errorf("error %q does not name the URL %s", err, ts.URL)
	}
}

func TestTLS12Minimum(t *testing.T) {
	c, err := New("https://localhost:1", "gh_x")
	if err != nil {
		t.Fatal(err)
	}
	tr := c.hc.Transport.(*http.Transport)
	if tr.TLSClientConfig.MinVersion < 0x0303 {
		t.Errorf("MinVersion = %#x, want TLS 1.2 (0x0303) or later", tr.TLSClientConfig.MinVersion)
	}
}

func TestTransportErrorUnreachable(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := ts.URL
	ts.Close() // nothing listens there now
	c, err := New(url, "gh_x")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListScopes(t.Context())
	var te *TransportError
	if !errors.As(err, &te) || te.URL != url || te.Certificate() {
		t.Fatalf("ListScopes: %#v, want a non-certificate TransportError for %s", err, url)
	}
	if code := gatehouse.ErrorCode(err); code != gatehouse.EInternal {
		t.Errorf("ErrorCode = %q, want internal for a transport error", code)
	}
}

func TestAPIErrorMapping(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		wantCode    string
		wantMsg     string
	}{
		{"problem", 404, "application/problem+json",
			`{"type":"https://gatehouse.dev/problems/not_found","title":"Not Found","status":404,"detail":"device \"x\" not found","code":"not_found"}`,
			gatehouse.ENotFound, `device "x" not found`},
		{"specific code", 409, "application/problem+json; charset=utf-8",
			`{"title":"Conflict","status":409,"detail":"cannot move","code":"invalid_transition"}`,
			gatehouse.EInvalidTransition, "cannot move"},
		{"title only", 401, "application/problem+json", `{"title":"Unauthorized","status":401,"code":"unauthenticated"}`,
			gatehouse.EUnauthenticated, "Unauthorized"},
		{"proxy html", 502, "text/html", `<html><body>Bad gateway</body></html>`,
			gatehouse.EUnavailable, "HTTP Bad Gateway"},
		{"plain text", 429, "text/plain", `slow down`, gatehouse.ERateLimited, "HTTP Too Many Requests: slow down"},
		{"json without code", 412, "application/json", `{"message":"nope"}`, gatehouse.EPreconditionFailed, "HTTP Precondition Failed"},
		{"teapot", 418, "", ``, gatehouse.EInternal, "HTTP I'm a teapot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			})
			_, err := c.GetDevice(t.Context(), "default", "x")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %#v, want *APIError", err)
			}
			if ae.Status != tt.status || ae.Code != tt.wantCode || ae.Message != tt.wantMsg {
				t.Errorf("got {%d %q %q}, want {%d %q %q}", ae.Status, ae.Code, ae.Message, tt.status, tt.wantCode, tt.wantMsg)
			}
			if got := gatehouse.ErrorCode(err); got != tt.wantCode {
				t.Errorf("gatehouse.ErrorCode = %q, want %q", got, tt.wantCode)
			}
			if got := gatehouse.ErrorMessage(err); got != tt.wantMsg {
				t.Errorf("gatehouse.ErrorMessage = %q, want %q", got, tt.wantMsg)
			}
			var ge *gatehouse.Error
			if !errors.As(err, &ge) || ge.Code != tt.wantCode {
				t.Errorf("errors.As *gatehouse.Error: %v", ge)
			}
		})
	}
}

func TestRequestShape(t *testing.T) {
	type seen struct {
		method, path, rawQuery, auth, ifMatch, contentType, body string
	}
	var got seen
	c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := r.Body.Read(buf)
		b.Write(buf[:n])
		got = seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"),
			r.Header.Get("If-Match"), r.Header.Get("Content-Type"), b.String()}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"a/b","items":[]}`)
	})
	ctx := t.Context()

	c.PatchDevice(ctx, "default", "a/b", json.RawMessage(`{"tags":{"x":null}}`), "abc")
	want := seen{"PATCH", "/v1/scopes/default/devices/a%2Fb", "", "Bearer gh_test", `"abc"`, "application/merge-patch+json", `{"tags":{"x":null}}`}
	if got != want {
		t.Errorf("PatchDevice sent %+v\nwant %+v", got, want)
	}

	c.ListDevices(ctx, "s1", ListOptions{States: []gatehouse.State{"active", "inactive"}, Connection: gatehouse.Online,
		Tags: []string{"site in (a,b)", "!x"}, Limit: 5, Cursor: "cur"})
	if want := "connection=online&cursor=cur&limit=5&state=active&state=inactive&tag=site+in+%28a%2Cb%29&tag=%21x"; got.rawQuery != want {
		t.Errorf("ListDevices query %q, want %q", got.rawQuery, want)
	}

	c.SetState(ctx, "s1", "d1", gatehouse.StateActive, "go", `"already-quoted"`)
	if got.ifMatch != `"already-quoted"` || got.body != `{"state":"active","reason":"go"}` || got.path != "/v1/scopes/s1/devices/d1/state" {
		t.Errorf("SetState sent %+v", got)
	}

	c.DeleteDevice(ctx, "s1", "d1", "*")
	if got.method != "DELETE" || got.ifMatch != "*" {
		t.Errorf("DeleteDevice sent %+v", got)
	}

	c.Events(ctx, "s1", 7, 20)
	if got.rawQuery != "after=7&limit=20" || got.path != "/v1/scopes/s1/events" {
		t.Errorf("Events sent %+v", got)
	}
}

func TestDevicesIterator(t *testing.T) {
	pages := map[string]string{
		"":   `{"items":[{"id":"a"},{"id":"b"}],"nextCursor":"c1"}`,
		"c1": `{"items":[{"id":"c"}],"nextCursor":"c2"}`,
		"c2": `{"items":[]}`,
	}
	c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, pages[r.URL.Query().Get("cursor")])
	})
	var ids []string
	for d, err := range c.Devices(t.Context(), "default", ListOptions{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	if got := strings.Join(ids, ","); got != "a,b,c" {
		t.Errorf("Devices yielded %q, want a,b,c", got)
	}
}

// sseEvent formats one event as the server does.
func sseEvent(seq int64) string {
	e := gatehouse.Event{Seq: seq, Scope: "default", Type: gatehouse.EventDeviceCreated, Time: time.Unix(seq, 0).UTC(), Actor: "token:x", Subject: "devices/d"}
	b, _ := json.Marshal(e)
	return fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", seq, e.Type, b)
}

func TestStreamEventsResumes(t *testing.T) {
	var (
		mu       sync.Mutex
		requests []string // Last-Event-ID and after of each connection
	)
	c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := len(requests)
		requests = append(requests, r.Header.Get("Last-Event-ID")+"/"+r.URL.Query().Get("after"))
		mu.Unlock()
		if r.Header.Get("Accept") != "text/event-stream" {
			http.Error(w, "want SSE", 400)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		switch n {
		case 0: // two events, a keepalive, a non-event frame, then the connection drops
			fmt.Fprint(w, ": hello\n\n", "retry: 1\n\n", sseEvent(1), "event: ping\ndata: {}\n\n", sseEvent(2))
		case 1: // the server has a hiccup
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(503)
			fmt.Fprint(w, `{"code":"unavailable","detail":"database down","status":503}`)
		default: // replays 2 (already seen), then 3
			fmt.Fprint(w, sseEvent(2), sseEvent(3))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}, WithStreamBackoff(time.Millisecond, 5*time.Millisecond))

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var seqs []int64
	err := c.StreamEvents(ctx, "default", 0, func(e *gatehouse.Event) error {
		seqs = append(seqs, e.Seq)
		if e.Seq == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("StreamEvents returned %v, want context.Canceled", err)
	}
	if fmt.Sprint(seqs) != "[1 2 3]" {
		t.Errorf("got events %v, want [1 2 3]", seqs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(requests) < 3 || requests[0] != "/0" || requests[1] != "2/2" || requests[2] != "2/2" {
		t.Errorf("connections sent (Last-Event-ID/after) %q, want [/0 2/2 2/2]", requests)
	}
}

func TestStreamEventsPermanentErrors(t *testing.T) {
	t.Run("unauthenticated", func(t *testing.T) {
		c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(401)
			fmt.Fprint(w, `{"code":"unauthenticated","detail":"invalid or revoked API token","status":401}`)
		})
		err := c.StreamEvents(t.Context(), "default", 0, func(*gatehouse.Event) error { return nil })
		if gatehouse.ErrorCode(err) != gatehouse.EUnauthenticated {
			t.Errorf("err = %v, want unauthenticated", err)
		}
	})
	t.Run("callback error", func(t *testing.T) {
		c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, sseEvent(1), sseEvent(2))
		})
		stop := errors.New("stop")
		var n int
		err := c.StreamEvents(t.Context(), "default", 0, func(*gatehouse.Event) error { n++; return stop })
		if err != stop || n != 1 {
			t.Errorf("err = %v after %d calls, want the callback's error after 1", err, n)
		}
	})
	t.Run("not a stream", func(t *testing.T) {
		c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"items":[]}`)
		})
		err := c.StreamEvents(t.Context(), "default", 0, func(*gatehouse.Event) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "text/event-stream") {
			t.Errorf("err = %v, want a complaint about the content type", err)
		}
	})
}

func TestStreamReadMultilineData(t *testing.T) {
	var got []*gatehouse.Event
	s := &stream{c: &Client{maxBackoff: time.Second}, fn: func(e *gatehouse.Event) error { got = append(got, e); return nil }}
	in := "data: {\"seq\":1,\ndata: \"type\":\"device.created\"}\n\n" + "data:{\"seq\":2}\r\n\r\n"
	err := s.read(strings.NewReader(in))
	if !errors.Is(err, errStreamEnded) {
		t.Errorf("read = %v, want errStreamEnded", err)
	}
	if len(got) != 2 || got[0].Type != gatehouse.EventDeviceCreated || got[1].Seq != 2 {
		t.Errorf("got %+v", got)
	}
}
