package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// sealedBackends is backends with a keyring (webhook secrets are sealed).
// It hands fn the store too, so that a test can run a second registry (a
// second node) on it.
func sealedBackends(t *testing.T, fn func(t *testing.T, newReg func() *registry.Service, admin *gatehouse.Principal)) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		_, admin := caNode(t, st)
		fn(t, func() *registry.Service { return caRegistry(t, st) }, admin)
	})
}

// delivery is one request a receiver got.
type delivery struct {
	seq     int64 // from the body
	hdrSeq  string
	attempt string
	typ     string
	status  int
}

// receiver is an httptest webhook receiver; answer decides each response
// (n counts requests from 0).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	got    []delivery
	answer func(n int, seq int64) int
	hang   func(n int) time.Duration
}

func newReceiver(t *testing.T, secret string, answer func(n int, seq int64) int) *receiver {
	r := &receiver{t: t, secret: secret, answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var e gatehouse.Event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("receiver: body %q: %v", body, err)
		}
		sig := req.Header.Get(registry.HeaderSignature)
		var ts int64
		fmt.Sscanf(sig, "t=%d,", &ts)
		if want := registry.Sign([]byte(secret), body, time.Unix(ts, 0)); sig != want {
			t.Errorf("receiver: signature %q, want %q", sig, want)
		}
		r.mu.Lock()
		n := len(r.got)
		status := 200
		if r.answer != nil {
			status = r.answer(n, e.Seq)
		}
		var hang time.Duration
		if r.hang != nil {
			hang = r.hang(n)
		}
		recorded := status
		if hang > 0 {
			recorded = 0 // the sender gives up first: not delivered
		}
		r.got = append(r.got, delivery{seq: e.Seq, hdrSeq: req.Header.Get(registry.HeaderEventSeq), attempt: req.Header.Get(registry.HeaderAttempt), typ: e.Type, status: recorded})
		r.mu.Unlock()
		if hang > 0 {
			select {
			case <-time.After(hang):
			case <-req.Context().Done():
				return
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor polls until cond holds on the deliveries.
func (r *receiver) waitFor(what string, cond func([]delivery) bool) []delivery {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ds := r.deliveries(); cond(ds) {
			return ds
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Fatalf("timed out waiting for %s; got %+v", what, r.deliveries())
	return nil
}

func ok2xx(status int) bool { return status >= 200 && status < 300 }

// delivered reports whether seq was answered 2xx.
func delivered(ds []delivery, seq int64) bool {
	for _, d := range ds {
		if d.seq == seq && ok2xx(d.status) {
			return true
		}
	}
	return false
}

// checkOrder fails unless the deliveries run in sequence order with
// repeats only as retries (the same seq again right after a failure), each
// carrying its seq in the header, and every seq in want answered 2xx.
func checkOrder(t *testing.T, ds []delivery, want []int64) {
	t.Helper()
	var ok []int64
	for i, d := range ds {
		if d.hdrSeq != strconv.FormatInt(d.seq, 10) {
			t.Errorf("delivery %d: header seq %q, body seq %d", i, d.hdrSeq, d.seq)
		}
		if i > 0 {
			prev := ds[i-1]
			switch {
			case d.seq == prev.seq && ok2xx(prev.status):
				t.Errorf("delivery %d: seq %d again after it succeeded", i, d.seq)
			case d.seq < prev.seq:
				t.Errorf("delivery %d: seq %d after %d (out of order)", i, d.seq, prev.seq)
			}
		}
		if ok2xx(d.status) {
			ok = append(ok, d.seq)
		}
	}
	if !slices.Equal(ok, want) {
		t.Errorf("delivered seqs %v, want %v", ok, want)
	}
}

func fastConfig(node string) registry.WebhookConfig {
	return registry.WebhookConfig{Node: node, Poll: 10 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Timeout: 2 * time.Second}
}

func runWorker(t *testing.T, reg *registry.Service, cfg registry.WebhookConfig) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); reg.RunWebhooks(ctx, cfg) }()
	t.Cleanup(func() { cancel(); <-done })
}

func createDevices(t *testing.T, reg *registry.Service, p *gatehouse.Principal, prefix string, n int) []int64 {
	t.Helper()
	var seqs []int64
	for i := range n {
		if _, err := reg.CreateDevice(context.Background(), p, "default", registry.DeviceCreate{ID: fmt.Sprintf("%s-%d", prefix, i)}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := reg.Events(context.Background(), p, "default", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == gatehouse.EventDeviceCreated {
			seqs = append(seqs, e.Seq)
		}
	}
	return seqs
}

const testSecret = "0123456789abcdef-secret"

// TestWebhookRetriesInOrder: a receiver that fails 3 times still gets every
// event, in sequence order, duplicates only as retries.
func TestWebhookRetriesInOrder(t *testing.T) {
	sealedBackends(t, func(t *testing.T, newReg func() *registry.Service, admin *gatehouse.Principal) {
		reg := newReg()
		ctx := context.Background()
		rcv := newReceiver(t, testSecret, func(n int, _ int64) int {
			if n < 3 {
				return 500
			}
			return 200
		})
		w, err := reg.CreateWebhook(ctx, admin, "default", registry.WebhookCreate{URL: rcv.srv.URL, Secret: testSecret, Events: []string{"device.*"}})
		if err != nil {
			t.Fatal(err)
		}
		want := createDevices(t, reg, admin, "d", 20)
		runWorker(t, reg, fastConfig("node-a"))
		ds := rcv.waitFor("every event", func(ds []delivery) bool { return delivered(ds, want[len(want)-1]) })
		checkOrder(t, ds, want)
		if ds[0].attempt != "1" || ds[1].attempt != "2" || ds[3].attempt != "4" {
			t.Errorf("attempt headers: %+v", ds[:4])
		}
		for _, d := range ds {
			if d.typ != gatehouse.EventDeviceCreated {
				t.Errorf("filter device.* let %q through", d.typ)
			}
		}
		// The cursor moves after the receiver's 2xx, so it may trail the
		// last delivery by a moment.
		var info *registry.WebhookInfo
		deadline := time.Now().Add(5 * time.Second)
		for {
			info, err = reg.GetWebhook(ctx, admin, "default", w.ID)
			if err == nil && info.DeliveredSeq >= want[len(want)-1] || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil || info.DeliveredSeq < want[len(want)-1] || info.Failures != 0 {
			t.Errorf("webhook after delivery: %+v (err %v)", info, err)
		}

		// Replay from the third device's event: they come again, in order.
		if _, err := reg.ReplayWebhook(ctx, admin, "default", w.ID, want[2]); err != nil {
			t.Fatal(err)
		}
		n := len(ds)
		ds = rcv.waitFor("the replay", func(ds []delivery) bool { return len(ds) >= n+len(want)-2 && ds[len(ds)-1].seq == want[len(want)-1] })
		checkOrder(t, ds[n:], want[2:])
	})
}

// TestWebhookTimeoutAndDeadLetters: a receiver that hangs is retried; an
// event that keeps failing goes to the dead letters after MaxFailures and
// delivery goes on.
func TestWebhookTimeoutAndDeadLetters(t *testing.T) {
	sealedBackends(t, func(t *testing.T, newReg func() *registry.Service, admin *gatehouse.Principal) {
		reg := newReg()
		ctx := context.Background()
		var poison int64
		rcv := newReceiver(t, testSecret, func(n int, seq int64) int {
			if seq == poison {
				return 503
			}
			return 200
		})
		rcv.hang = func(n int) time.Duration {
			if n < 2 {
				return 10 * time.Second
			}
			return 0
		}
		w, err := reg.CreateWebhook(ctx, admin, "default", registry.WebhookCreate{URL: rcv.srv.URL, Secret: testSecret, Events: []string{"device.created"}})
		if err != nil {
			t.Fatal(err)
		}
		seqs := createDevices(t, reg, admin, "d", 6)
		poison = seqs[3]
		cfg := fastConfig("node-a")
		cfg.Timeout = 200 * time.Millisecond
		cfg.MaxFailures = 4
		runWorker(t, reg, cfg)
		ds := rcv.waitFor("every event", func(ds []delivery) bool { return delivered(ds, seqs[len(seqs)-1]) })
		if ds[0].seq != seqs[0] || ds[1].seq != seqs[0] || !delivered(ds, seqs[0]) {
			t.Errorf("the hanging receiver was not retried: %+v", ds)
		}
		wantOK := slices.Delete(slices.Clone(seqs), 3, 4)
		checkOrder(t, ds, wantOK)
		tries := 0
		for _, d := range ds {
			if d.seq == poison {
				tries++
			}
		}
		if tries != 4 {
			t.Errorf("poison event tried %d times, want 4", tries)
		}
		dls, err := reg.DeadLetters(ctx, admin, "default", w.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) != 1 || dls[0].Seq != poison || dls[0].Attempts != 4 || dls[0].LastError != "HTTP 503" || dls[0].Type != gatehouse.EventDeviceCreated {
			t.Errorf("dead letters: got %+v, want seq %d after 4 attempts", dls, poison)
		}
	})
}

// TestWebhookTwoNodes: two nodes delivering the same webhooks send each
// event once (no failures, so no retries).
func TestWebhookTwoNodes(t *testing.T) {
	sealedBackends(t, func(t *testing.T, newReg func() *registry.Service, admin *gatehouse.Principal) {
		reg := newReg()
		ctx := context.Background()
		rcv := newReceiver(t, testSecret, nil)
		if _, err := reg.CreateWebhook(ctx, admin, "default", registry.WebhookCreate{URL: rcv.srv.URL, Secret: testSecret, Events: []string{"device.created"}}); err != nil {
			t.Fatal(err)
		}
		runWorker(t, newReg(), fastConfig("node-a"))
		runWorker(t, newReg(), fastConfig("node-b"))
		seqs := createDevices(t, reg, admin, "d", 30)
		ds := rcv.waitFor("every event", func(ds []delivery) bool { return delivered(ds, seqs[len(seqs)-1]) })
		time.Sleep(100 * time.Millisecond)
		checkOrder(t, rcv.deliveries(), seqs)
		_ = ds
	})
}

func TestWebhookValidation(t *testing.T) {
	sealedBackends(t, func(t *testing.T, newReg func() *registry.Service, admin *gatehouse.Principal) {
		reg := newReg()
		ctx := context.Background()
		for _, tc := range []struct {
			name string
			req  registry.WebhookCreate
			code string
		}{
			{"plain http to a remote host", registry.WebhookCreate{URL: "http://example.com/x"}, gatehouse.EInvalid},
			{"ftp", registry.WebhookCreate{URL: "ftp://example.com/x"}, gatehouse.EInvalid},
			{"relative", registry.WebhookCreate{URL: "/x"}, gatehouse.EInvalid},
			{"credentials", registry.WebhookCreate{URL: "https://u:p@example.com/x"}, gatehouse.EInvalid},
			{"short secret", registry.WebhookCreate{URL: "https://example.com/x", Secret: "short"}, gatehouse.EInvalid},
			{"bad filter", registry.WebhookCreate{URL: "https://example.com/x", Events: []string{"Device Created"}}, gatehouse.EInvalid},
			{"bare star suffix", registry.WebhookCreate{URL: "https://example.com/x", Events: []string{".*"}}, gatehouse.EInvalid},
			{"https", registry.WebhookCreate{URL: "https://example.com/x", Events: []string{"device.*", "token.created", "*"}}, ""},
			{"http to loopback", registry.WebhookCreate{URL: "http://127.0.0.1:9/x"}, ""},
			{"http to localhost", registry.WebhookCreate{URL: "http://localhost:9/x"}, ""},
		} {
			w, err := reg.CreateWebhook(ctx, admin, "default", tc.req)
			if got := gatehouse.ErrorCode(err); got != tc.code {
				t.Errorf("%s: got code %q (err %v), want %q", tc.name, got, err, tc.code)
			}
			if err == nil && tc.req.Secret == "" && len(w.Secret) != 64 {
				t.Errorf("%s: generated secret %q, want 64 hex characters", tc.name, w.Secret)
			}
		}
		ws, err := reg.ListWebhooks(ctx, admin, "default")
		if err != nil || len(ws) != 3 {
			t.Fatalf("ListWebhooks: got %d (err %v), want 3", len(ws), err)
		}
		for _, w := range ws {
			if w.Secret != "" {
				t.Errorf("ListWebhooks shows a secret")
			}
		}
		if err := reg.DeleteWebhook(ctx, admin, "default", ws[0].ID); err != nil {
			t.Fatal(err)
		}
		if err := reg.DeleteWebhook(ctx, admin, "default", ws[0].ID); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("second delete: got %v, want not_found", err)
		}
		if _, err := reg.ReplayWebhook(ctx, admin, "default", ws[1].ID, 0); gatehouse.ErrorCode(err) != gatehouse.EInvalid {
			t.Errorf("replay from 0: got %v, want invalid", err)
		}
		// Audit: who created webhooks.
		evs, err := reg.QueryEvents(ctx, admin, "default", registry.EventQuery{Actor: admin.Actor(), Type: "webhook.*"})
		if err != nil || len(evs) != 4 {
			t.Errorf("audit query: got %d events (err %v), want 3 created + 1 deleted", len(evs), err)
		}
	})
}
