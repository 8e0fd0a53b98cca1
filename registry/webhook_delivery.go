package registry

import (
	"bytes"
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// Headers of a delivery.
const (
	HeaderSignature = "X-Gatehouse-Signature" // t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">
	HeaderEventSeq  = "X-Gatehouse-Event-Seq"
	HeaderEventType = "X-Gatehouse-Event-Type"
	HeaderWebhookID = "X-Gatehouse-Webhook"
	HeaderAttempt   = "X-Gatehouse-Delivery-Attempt"
)

// WebhookConfig tunes event delivery. Zero fields take the defaults.
type WebhookConfig struct {
	Node        string        // lease owner name; default a random one per process
	MaxFailures int           // consecutive failures before an event is dead-lettered; default 8
	Timeout     time.Duration // per attempt; default 10s
	MinBackoff  time.Duration // after the first failure; default 1s (doubling, with jitter)
	MaxBackoff  time.Duration // default 5m
	Poll        time.Duration // how often the webhooks are looked at; default 1s
	Lease       time.Duration // how long a node holds a webhook without progress; default 3 x Timeout
	Batch       int           // events read at a time; default 100
	Client      *http.Client  // default: a client that follows no redirects
}

func (c WebhookConfig) withDefaults() WebhookConfig {
	if c.Node == "" {
		b := make([]byte, 6)
		cryptoRead(b)
		c.Node = "node-" + hex.EncodeToString(b)
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 8
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(5*time.Minute, c.MinBackoff)
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Lease < 2*c.Timeout {
		c.Lease = 3 * c.Timeout
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.Client == nil {
		c.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return c
}

func cryptoRead(b []byte) { _, _ = crand.Read(b) }

// Sign returns the signature header value of body at time t, the scheme of
// provisioning webhooks (provision.Sign): t=<unix>,v1=<hex HMAC-SHA256 of
// "<unix>.<body>">.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// RunWebhooks delivers every scope's events to its webhooks until ctx ends.
// Each webhook is delivered by one node at a time (a lease on its row),
// in sequence order, at least once; several webhooks are delivered in
// parallel, so a receiver that hangs delays only its own events.
func (s *Service) RunWebhooks(ctx context.Context, cfg WebhookConfig) {
	cfg = cfg.withDefaults()
	d := &deliverer{s: s, cfg: cfg, running: map[string]bool{}}
	t := time.NewTicker(cfg.Poll)
	defer t.Stop()
	for {
		d.scan(ctx)
		select {
		case <-ctx.Done():
			d.wg.Wait()
			return
		case <-t.C:
		}
	}
}

type deliverer struct {
	s       *Service
	cfg     WebhookConfig
	mu      sync.Mutex
	running map[string]bool // scope/id being delivered by this node
	wg      sync.WaitGroup
}

// scan starts delivery of every webhook that has work and is free.
func (d *deliverer) scan(ctx context.Context) {
	ws, err := d.s.store.ListWebhooks(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			d.s.log.Error("webhooks: list", "err", err)
		}
		return
	}
	now := d.s.now()
	for _, w := range ws {
		key := w.Scope + "/" + w.ID
		d.mu.Lock()
		busy := d.running[key]
		d.mu.Unlock()
		if busy || now.Before(w.NextAttempt) || (w.LeaseOwner != "" && w.LeaseOwner != d.cfg.Node && now.Before(w.LeaseUntil)) {
			continue
		}
		// Idle webhooks cost one read, no write.
		evs, err := d.s.store.ListEvents(ctx, w.Scope, w.DeliveredSeq, 1)
		if err != nil || len(evs) == 0 {
			continue
		}
		d.mu.Lock()
		d.running[key] = true
		d.mu.Unlock()
		d.wg.Go(func() {
			defer func() {
				d.mu.Lock()
				delete(d.running, key)
				d.mu.Unlock()
			}()
			if err := d.deliver(ctx, w.Scope, w.ID); err != nil && ctx.Err() == nil && !errors.Is(err, errLeaseLost) {
				d.s.log.Error("webhooks: deliver", "scope", w.Scope, "webhook", w.ID, "err", err)
			}
		})
	}
}

// errLeaseLost ends a delivery whose webhook was replayed, deleted or taken
// over by another node: its progress must not be written.
var errLeaseLost = errors.New("webhook lease lost")

// claim takes the webhook's lease, or reports that it is not ours to take.
func (d *deliverer) claim(ctx context.Context, scope, id string) (*gatehouse.EventHook, error) {
	var got *gatehouse.EventHook
	err := d.s.store.Update(ctx, func(tx gatehouse.Tx) error {
		got = nil
		w, err := tx.GetWebhook(scope, id)
		if err != nil {
			return err
		}
		now := d.s.now()
		if now.Before(w.NextAttempt) || (w.LeaseOwner != "" && w.LeaseOwner != d.cfg.Node && now.Before(w.LeaseUntil)) {
			return nil
		}
		w.LeaseOwner, w.LeaseUntil = d.cfg.Node, now.Add(d.cfg.Lease).UTC().Truncate(time.Microsecond)
		if err := tx.UpdateWebhook(w); err != nil {
			return err
		}
		got = w
		return nil
	})
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return nil, errLeaseLost
	}
	if err == nil && got == nil {
		return nil, errLeaseLost
	}
	return got, err
}

// commit writes progress made under the lease: fn changes the webhook as
// read inside the transaction, which must still be ours, in the same
// generation.
func (d *deliverer) commit(ctx context.Context, held *gatehouse.EventHook, fn func(w *gatehouse.EventHook, tx gatehouse.Tx) error) error {
	err := d.s.store.Update(ctx, func(tx gatehouse.Tx) error {
		w, err := tx.GetWebhook(held.Scope, held.ID)
		if err != nil {
			return err
		}
		if w.LeaseOwner != d.cfg.Node || w.Generation != held.Generation {
			return errLeaseLost
		}
		if err := fn(w, tx); err != nil {
			return err
		}
		if w.LeaseOwner != "" {
			w.LeaseUntil = d.s.now().Add(d.cfg.Lease).UTC().Truncate(time.Microsecond)
		}
		if err := tx.UpdateWebhook(w); err != nil {
			return err
		}
		*held = *w
		return nil
	})
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return errLeaseLost
	}
	return err
}

// deliver sends a webhook's pending events in order until none is left,
// one fails (the cursor records when to try again), or the lease is lost.
func (d *deliverer) deliver(ctx context.Context, scope, id string) error {
	w, err := d.claim(ctx, scope, id)
	if err != nil {
		return err
	}
	sealed, err := d.s.keyring.Open(w.SealedSecret, webhookAAD(scope, id))
	if err != nil {
		return fmt.Errorf("open webhook secret: %w", err)
	}
	defer sealed.Wipe()
	secret := sealed.Reveal()
	release := func(w *gatehouse.EventHook, _ gatehouse.Tx) error {
		w.LeaseOwner = ""
		w.LeaseUntil = d.s.timestamp()
		return nil
	}
	for {
		evs, err := d.s.store.ListEvents(ctx, scope, w.DeliveredSeq, d.cfg.Batch)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return d.commit(ctx, w, release)
		}
		skipped := int64(0) // the last of a run of filtered-out events
		for _, e := range evs {
			if !matchEvent(w.Events, e.Type) {
				skipped = e.Seq
				continue
			}
			if skipped > 0 {
				if err := d.commit(ctx, w, func(w *gatehouse.EventHook, _ gatehouse.Tx) error { w.DeliveredSeq = skipped; return nil }); err != nil {
					return err
				}
				skipped = 0
			}
			attempt := w.Failures + 1
			derr := d.post(ctx, w, secret, e, attempt)
			if ctx.Err() != nil {
				return nil // shutting down: the event is tried again later
			}
			if derr == nil {
				err = d.commit(ctx, w, func(w *gatehouse.EventHook, _ gatehouse.Tx) error {
					w.DeliveredSeq, w.Failures, w.LastError = e.Seq, 0, ""
					return nil
				})
				if err != nil {
					return err
				}
				continue
			}
			msg := truncateString(derr.Error(), 256)
			if attempt >= d.cfg.MaxFailures || isPermanent(derr) {
				d.s.log.Warn("webhooks: dead letter", "scope", scope, "webhook", id, "seq", e.Seq, "attempts", attempt, "err", msg)
				err = d.commit(ctx, w, func(w *gatehouse.EventHook, tx gatehouse.Tx) error {
					if err := tx.AddDeadLetter(&gatehouse.DeadLetter{Scope: scope, WebhookID: id, Seq: e.Seq, Type: e.Type,
						Attempts: attempt, LastError: msg, Time: d.s.timestamp()}); err != nil {
						return err
					}
					w.DeliveredSeq, w.Failures, w.LastError = e.Seq, 0, msg
					return nil
				})
				if err != nil {
					return err
				}
				continue
			}
			wait := backoff(d.cfg.MinBackoff, d.cfg.MaxBackoff, attempt)
			d.s.log.Info("webhooks: delivery failed", "scope", scope, "webhook", id, "seq", e.Seq, "attempt", attempt, "retry_in", wait, "err", msg)
			return d.commit(ctx, w, func(w *gatehouse.EventHook, tx gatehouse.Tx) error {
				w.Failures, w.LastError = attempt, msg
				w.NextAttempt = d.s.now().Add(wait).UTC().Truncate(time.Microsecond)
				return release(w, tx)
			})
		}
		if skipped > 0 {
			if err := d.commit(ctx, w, func(w *gatehouse.EventHook, _ gatehouse.Tx) error { w.DeliveredSeq = skipped; return nil }); err != nil {
				return err
			}
		}
	}
}

// backoff is the wait after the attempt-th consecutive failure: doubling
// from min, capped at max, with jitter (between half and all of it) so that
// webhooks failing together do not retry together.
func backoff(minD, maxD time.Duration, attempt int) time.Duration {
	d := minD
	for i := 1; i < attempt && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	return d/2 + rand.N(d/2+1)
}

// permanentError is a refusal that retrying will not change (a 4xx other
// than 408 and 429): the event goes to the dead letters at once.
type permanentError struct{ error }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// post makes one delivery attempt.
func (d *deliverer) post(ctx context.Context, w *gatehouse.EventHook, secret []byte, e *gatehouse.Event, attempt int) error {
	body, err := json.Marshal(e)
	if err != nil {
		return permanentError{fmt.Errorf("encode event: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return permanentError{fmt.Errorf("request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gatehouse-webhooks/1")
	req.Header.Set(HeaderSignature, Sign(secret, body, d.s.now()))
	req.Header.Set(HeaderEventSeq, strconv.FormatInt(e.Seq, 10))
	req.Header.Set(HeaderEventType, e.Type)
	req.Header.Set(HeaderWebhookID, w.ID)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("timed out after %s", d.cfg.Timeout)
		}
		// Without the URL: its path or query may carry a key, and the
		// message goes to logs and lastError.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests:
		return permanentError{fmt.Errorf("HTTP %d", c)}
	default:
		return fmt.Errorf("HTTP %d", c)
	}
}

// WebhookBacklog returns, per scope and webhook ID, how many events are not
// yet delivered (counted up to gatehouse.MaxEventPage: a backlog that
// large is reported as that).
func (s *Service) WebhookBacklog(ctx context.Context) (map[[2]string]int64, error) {
	ws, err := s.store.ListWebhooks(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make(map[[2]string]int64, len(ws))
	for _, w := range ws {
		evs, err := s.store.ListEvents(ctx, w.Scope, w.DeliveredSeq, gatehouse.MaxEventPage)
		if err != nil {
			return nil, err
		}
		out[[2]string{w.Scope, w.ID}] = int64(len(evs))
	}
	return out, nil
}
