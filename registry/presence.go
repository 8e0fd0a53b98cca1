package registry

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// Presence events.
const (
	EventDeviceConnected    = "device.connected"
	EventDeviceDisconnected = "device.disconnected"
	EventDeviceReported     = "device.reported"
)

// presenceFlushEvery is how long a connect or disconnect may wait before it
// is written. Writes are coalesced: many devices reconnecting at once make
// one transaction per interval, not one each.
const presenceFlushEvery = 200 * time.Millisecond

// presenceEventGap rate-limits connected/disconnected events per device: a
// device flapping faster than this writes its connection state, but not an
// event per flap.
const presenceEventGap = 10 * time.Second

type presenceKey struct{ scope, id string }

type presenceUpdate struct {
	online   *bool // nil: only lastSeen moved
	at       time.Time
	protocol string
}

// presence batches connection state changes.
type presence struct {
	mu        sync.Mutex
	pending   map[presenceKey]presenceUpdate
	lastEvent map[presenceKey]time.Time
	wake      chan struct{}
}

func newPresence() *presence {
	return &presence{pending: map[presenceKey]presenceUpdate{}, lastEvent: map[presenceKey]time.Time{}, wake: make(chan struct{}, 1)}
}

// DeviceConnected records that an authenticated device opened a session:
// its connection reads online (within presenceFlushEvery), lastSeen moves,
// and a device in state provisioned becomes active (first authenticated
// contact).
func (s *Service) DeviceConnected(scope, id, protocol string) {
	s.notePresence(scope, id, protocol, true)
}

// DeviceDisconnected records that a device's session ended.
func (s *Service) DeviceDisconnected(scope, id, protocol string) {
	s.notePresence(scope, id, protocol, false)
}

// DeviceSeen moves a device's lastSeen (an authenticated request without a
// session, e.g. over CoAP) and activates a provisioned device.
func (s *Service) DeviceSeen(scope, id, protocol string) {
	k := presenceKey{scope, id}
	s.pres.mu.Lock()
	u, ok := s.pres.pending[k]
	if !ok {
		u = presenceUpdate{protocol: protocol}
	}
	u.at = s.timestamp()
	s.pres.pending[k] = u
	s.pres.mu.Unlock()
	s.pres.signal()
}

func (s *Service) notePresence(scope, id, protocol string, online bool) {
	k := presenceKey{scope, id}
	s.pres.mu.Lock()
	s.pres.pending[k] = presenceUpdate{online: &online, at: s.timestamp(), protocol: protocol}
	s.pres.mu.Unlock()
	s.pres.signal()
}

func (p *presence) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// RunPresence writes coalesced presence updates until ctx ends, then
// flushes what is left.
func (s *Service) RunPresence(ctx context.Context) {
	t := time.NewTicker(presenceFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.FlushPresence(context.Background())
			return
		case <-t.C:
		case <-s.pres.wake:
			// Let a burst accumulate before writing it.
			select {
			case <-ctx.Done():
			case <-time.After(presenceFlushEvery / 4):
			}
		}
		if err := s.FlushPresence(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("write presence", "err", err)
		}
	}
}

// FlushPresence writes every pending presence update now, in batches.
func (s *Service) FlushPresence(ctx context.Context) error {
	s.pres.mu.Lock()
	batch := s.pres.pending
	s.pres.pending = map[presenceKey]presenceUpdate{}
	s.pres.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	keys := make([]presenceKey, 0, len(batch))
	for k := range batch {
		keys = append(keys, k)
	}
	var activated []presenceKey
	const chunk = 500
	for i := 0; i < len(keys); i += chunk {
		part := keys[i:min(i+chunk, len(keys))]
		err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
			activated = activated[:0]
			for _, k := range part {
				u := batch[k]
				d, err := tx.GetDevice(k.scope, k.id)
				if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
					continue
				} else if err != nil {
					return err
				}
				next := d.Clone()
				at := u.at
				next.Connection.LastSeen = &at
				if u.online != nil {
					next.Connection.Status = gatehouse.Offline
					if *u.online {
						next.Connection.Status = gatehouse.Online
					}
				}
				actor := "device:" + k.id
				firstContact := d.State == gatehouse.StateProvisioned && (u.online == nil || *u.online)
				if firstContact {
					next.State = gatehouse.StateActive
					next.UpdatedAt = at
					next.ETag = newETag() // a state change is a write an operator must see
				}
				// Presence alone keeps the etag: connection state is not
				// operator-controlled, and an If-Match flow must not fail
				// because a device reconnected.
				if err := tx.UpdateDevice(next, d.ETag); err != nil {
					return err
				}
				if firstContact {
					if err := tx.AddStateChange(k.scope, k.id, &gatehouse.StateChange{From: d.State, To: gatehouse.StateActive, Actor: actor,
						Reason: "first authenticated contact (" + u.protocol + ")", Time: at}); err != nil {
						return err
					}
					if err := ev.append(k.scope, gatehouse.EventDeviceStateChanged, actor, gatehouse.DeviceSubject(k.id), at,
						map[string]any{"from": d.State, "to": gatehouse.StateActive, "reason": "first authenticated contact", "etag": next.ETag}); err != nil {
						return err
					}
					activated = append(activated, k)
				}
				if u.online != nil && d.Connection.Status != next.Connection.Status {
					typ := EventDeviceDisconnected
					if *u.online {
						typ = EventDeviceConnected
					}
					if !s.presenceEventDue(k, typ, at) {
						continue
					}
					if err := ev.append(k.scope, typ, actor, gatehouse.DeviceSubject(k.id), at, map[string]any{"protocol": u.protocol}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			// Put the batch back (newer updates win) and let the next
			// flush retry.
			s.pres.mu.Lock()
			for _, k := range keys[i:] {
				if _, newer := s.pres.pending[k]; !newer {
					s.pres.pending[k] = batch[k]
				}
			}
			s.pres.mu.Unlock()
			return err
		}
	}
	return nil
}

// presenceEventDue rate-limits each event type per device on its own, so
// a flapping device writes at most one connected and one disconnected event
// per presenceEventGap.
func (s *Service) presenceEventDue(k presenceKey, typ string, at time.Time) bool {
	ek := presenceKey{k.scope, k.id + "\x00" + typ}
	s.pres.mu.Lock()
	defer s.pres.mu.Unlock()
	if last, ok := s.pres.lastEvent[ek]; ok && at.Sub(last) < presenceEventGap {
		return false
	}
	if len(s.pres.lastEvent) > 200_000 {
		clear(s.pres.lastEvent)
	}
	s.pres.lastEvent[ek] = at
	return true
}

// ReportProperties merges a device's reported properties (an RFC 7386 merge
// patch of its reported object; metadata, never telemetry: 32 KiB at most).
func (s *Service) ReportProperties(ctx context.Context, scope, id string, patch json.RawMessage) error {
	if len(patch) > gatehouse.MaxReportedBytes {
		return gatehouse.Errorf(gatehouse.ETooLarge, "reported properties take %d bytes; the limit is %d", len(patch), gatehouse.MaxReportedBytes)
	}
	if err := gatehouse.ValidateJSONObject("reported", patch, gatehouse.MaxReportedBytes); err != nil {
		return err
	}
	return s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		d, err := tx.GetDevice(scope, id)
		if err != nil {
			return deviceNotFound(err, scope, id)
		}
		merged, err := gatehouse.MergePatch(d.Reported, patch)
		if err != nil {
			return err
		}
		if err := gatehouse.ValidateJSONObject("reported", merged, gatehouse.MaxReportedBytes); err != nil {
			return err
		}
		next := d.Clone()
		next.Reported = merged
		now := s.timestamp()
		next.Connection.LastSeen = &now
		if err := tx.UpdateDevice(next, d.ETag); err != nil {
			return err
		}
		return ev.append(scope, EventDeviceReported, "device:"+id, gatehouse.DeviceSubject(id), now, map[string]any{"reported": merged})
	})
}

// DeviceByID returns a device for a protocol front end that authenticated
// it (no principal: the device itself is asking).
func (s *Service) DeviceByID(ctx context.Context, scope, id string) (*gatehouse.Device, error) {
	d, err := s.store.GetDevice(ctx, scope, id)
	return d, deviceNotFound(err, scope, id)
}

// EventDeviceTopicViolation records a device session closed for repeatedly
// using topics outside its own (input for a quarantine policy).
const EventDeviceTopicViolation = "device.topic_violation"

// RecordTopicViolations appends a device.topic_violation event, at most one
// per device per presenceEventGap, so that an abusive device cannot flood
// the event log.
func (s *Service) RecordTopicViolations(ctx context.Context, scope, id, protocol string, count int, sample string) error {
	now := s.timestamp()
	if !s.presenceEventDue(presenceKey{scope, id}, EventDeviceTopicViolation, now) {
		return nil
	}
	if len(sample) > 256 {
		sample = sample[:256]
	}
	return s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		if _, err := tx.GetScope(scope); err != nil {
			return notFoundScope(err, scope)
		}
		return ev.append(scope, EventDeviceTopicViolation, "device:"+id, gatehouse.DeviceSubject(id), now,
			map[string]any{"protocol": protocol, "violations": count, "sample": sample})
	})
}
