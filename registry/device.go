package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-iot/gatehouse"
)

// DeviceCreate is the body of a device creation.
type DeviceCreate struct {
	ID     string            `json:"id"`
	Tags   map[string]string `json:"tags,omitempty"`
	Config json.RawMessage   `json:"config,omitempty"`
}

// DeviceQuery selects devices of one scope.
type DeviceQuery struct {
	States     []gatehouse.State
	Connection gatehouse.ConnectionStatus
	Selectors  []gatehouse.TagSelector
	Cursor     string
	Limit      int
	// LastSeenBefore (exclusive) and LastSeenAfter (inclusive) bound when
	// a device was last seen; zero sets no bound, and a device never seen
	// matches neither.
	LastSeenBefore time.Time
	LastSeenAfter  time.Time
	Enrollment     string // ID of the provisioning enrollment, exact
}

// filter returns the store filter of q in scope, from the device after.
func (q *DeviceQuery) filter(scope, after string, limit int) gatehouse.DeviceFilter {
	return gatehouse.DeviceFilter{
		Scope: scope, States: q.States, Connection: q.Connection, Selectors: q.Selectors,
		LastSeenBefore: q.LastSeenBefore, LastSeenAfter: q.LastSeenAfter, Enrollment: q.Enrollment,
		After: after, Limit: limit,
	}
}

// DevicePage is one page of a device listing.
type DevicePage struct {
	Items      []*gatehouse.Device `json:"items"`
	NextCursor string              `json:"nextCursor,omitempty"`
}

// Page sizes.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// CreateDevice registers a device in state provisioned.
func (s *Service) CreateDevice(ctx context.Context, p *gatehouse.Principal, scope string, req DeviceCreate) (*gatehouse.Device, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return nil, err
	}
	if bytes.Equal(bytes.TrimSpace(req.Config), []byte("null")) {
		req.Config = nil
	}
	now := s.timestamp()
	d := &gatehouse.Device{
		ID: req.ID, Scope: scope, State: gatehouse.StateProvisioned,
		Connection: gatehouse.Connection{Status: gatehouse.Offline},
		Tags:       req.Tags, Config: gatehouse.CompactJSON(req.Config), Reported: json.RawMessage("{}"),
		CreatedAt: now, UpdatedAt: now, ETag: newETag(),
	}
	if d.Tags == nil {
		d.Tags = map[string]string{}
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		if _, err := tx.GetScope(scope); err != nil {
			return notFoundScope(err, scope)
		}
		if err := tx.CreateDevice(d); err != nil {
			if gatehouse.ErrorCode(err) == gatehouse.EConflict {
				return gatehouse.Errorf(gatehouse.EConflict, "device %q already exists in scope %q", d.ID, scope)
			}
			return err
		}
		if err := tx.AddStateChange(scope, d.ID, &gatehouse.StateChange{To: d.State, Actor: p.Actor(), Reason: "created", Time: now}); err != nil {
			return err
		}
		return ev.append(scope, gatehouse.EventDeviceCreated, p.Actor(), gatehouse.DeviceSubject(d.ID), now, d)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// GetDevice returns one device.
func (s *Service) GetDevice(ctx context.Context, p *gatehouse.Principal, scope, id string) (*gatehouse.Device, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	if err := gatehouse.ValidateDeviceID(id); err != nil {
		return nil, err
	}
	d, err := s.store.GetDevice(ctx, scope, id)
	return d, deviceNotFound(err, scope, id)
}

// ListDevices returns one page of a scope's devices, ordered by ID.
func (s *Service) ListDevices(ctx context.Context, p *gatehouse.Principal, scope string, q DeviceQuery) (*DevicePage, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	after, err := gatehouse.DecodeCursor(q.Cursor)
	if err != nil {
		return nil, err
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultPageSize
	case q.Limit < 0 || q.Limit > MaxPageSize:
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "limit must be between 1 and %d", MaxPageSize)
	}
	if len(q.Selectors) > gatehouse.MaxSelectors {
		return nil, gatehouse.Errorf(gatehouse.EInvalidSelector, "at most %d tag selectors per query", gatehouse.MaxSelectors)
	}
	for _, st := range q.States {
		if !st.Valid() {
			return nil, gatehouse.Errorf(gatehouse.EInvalid, "unknown state %q in filter", st)
		}
	}
	if q.Connection != "" && q.Connection != gatehouse.Online && q.Connection != gatehouse.Offline {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "connection filter must be online or offline")
	}
	if !q.LastSeenBefore.IsZero() && !q.LastSeenAfter.IsZero() && !q.LastSeenAfter.Before(q.LastSeenBefore) {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "lastSeenAfter must be earlier than lastSeenBefore")
	}
	if q.Enrollment != "" {
		if err := gatehouse.ValidateDeviceID(q.Enrollment); err != nil {
			return nil, gatehouse.Errorf(gatehouse.EInvalid, "the enrollment filter is not an enrollment ID: use lowercase letters, digits and - . _ :, at most %d characters", gatehouse.MaxDeviceIDLen)
		}
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	items, err := s.store.ListDevices(ctx, q.filter(scope, after, q.Limit+1))
	if err != nil {
		return nil, err
	}
	page := &DevicePage{Items: items}
	if len(items) > q.Limit {
		page.Items = items[:q.Limit]
		page.NextCursor = gatehouse.EncodeCursor(page.Items[q.Limit-1].ID)
	}
	if page.Items == nil {
		page.Items = []*gatehouse.Device{}
	}
	return page, nil
}

// PatchDevice applies a merge patch to a device's tags and config. ifMatch,
// when not empty, must equal the device's current etag ("*" matches any).
func (s *Service) PatchDevice(ctx context.Context, p *gatehouse.Principal, scope, id string, patch *gatehouse.DevicePatch, ifMatch string) (*gatehouse.Device, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return nil, err
	}
	if err := gatehouse.ValidateDeviceID(id); err != nil {
		return nil, err
	}
	var out *gatehouse.Device
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		cur, err := tx.GetDevice(scope, id)
		if err != nil {
			return deviceNotFound(err, scope, id)
		}
		if err := checkIfMatch(ifMatch, cur); err != nil {
			return err
		}
		d := cur.Clone()
		if err := patch.Apply(d); err != nil {
			return err
		}
		if maps.Equal(d.Tags, cur.Tags) && bytes.Equal(d.Config, cur.Config) {
			out = cur // nothing changed: no write, no event, same etag
			return nil
		}
		d.UpdatedAt = s.timestamp()
		d.ETag = newETag()
		if err := tx.UpdateDevice(d, cur.ETag); err != nil {
			return err
		}
		out = d
		changed := []string{}
		if len(patch.Tags) > 0 {
			changed = append(changed, "tags")
		}
		if len(patch.Config) > 0 {
			changed = append(changed, "config")
		}
		return ev.append(scope, gatehouse.EventDeviceUpdated, p.Actor(), gatehouse.DeviceSubject(id), d.UpdatedAt,
			map[string]any{"changed": changed, "tags": d.Tags, "config": d.Config, "etag": d.ETag})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetState moves a device through its lifecycle, recording actor, reason
// and time in its history.
func (s *Service) SetState(ctx context.Context, p *gatehouse.Principal, scope, id string, to gatehouse.State, reason, ifMatch string) (*gatehouse.Device, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return nil, err
	}
	if err := gatehouse.ValidateDeviceID(id); err != nil {
		return nil, err
	}
	if err := validateReason(reason); err != nil {
		return nil, err
	}
	return s.transition(ctx, p.Actor(), scope, id, to, reason, ifMatch)
}

func (s *Service) transition(ctx context.Context, actor, scope, id string, to gatehouse.State, reason, ifMatch string) (*gatehouse.Device, error) {
	var out *gatehouse.Device
	revokedCerts := false
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		cur, err := tx.GetDevice(scope, id)
		if err != nil {
			return deviceNotFound(err, scope, id)
		}
		if err := checkIfMatch(ifMatch, cur); err != nil {
			return err
		}
		if err := gatehouse.CheckTransition(cur.State, to); err != nil {
			return err
		}
		d := cur.Clone()
		d.State = to
		d.UpdatedAt = s.timestamp()
		d.ETag = newETag()
		if err := tx.UpdateDevice(d, cur.ETag); err != nil {
			return err
		}
		ch := &gatehouse.StateChange{From: cur.State, To: to, Actor: actor, Reason: reason, Time: d.UpdatedAt}
		if err := tx.AddStateChange(scope, id, ch); err != nil {
			return err
		}
		out = d
		if err := ev.append(scope, gatehouse.EventDeviceStateChanged, actor, gatehouse.DeviceSubject(id), d.UpdatedAt,
			map[string]any{"from": cur.State, "to": to, "reason": reason, "etag": d.ETag}); err != nil {
			return err
		}
		if to == gatehouse.StateDecommissioned {
			// Decommissioning revokes every credential, in the same transaction.
			revokedCerts, err = s.revokeDevice(tx, ev, scope, id, actor, d.UpdatedAt)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if revokedCerts {
		if err := s.refreshCRL(ctx, scope); err != nil {
			s.log.Error("refresh CRL after decommission", "scope", scope, "device_id", id, "err", err)
		}
	}
	return out, nil
}

// DeleteDevice removes a device that was never seen, or one decommissioned.
// Any other device must be decommissioned first (EConflict).
func (s *Service) DeleteDevice(ctx context.Context, p *gatehouse.Principal, scope, id, ifMatch string) error {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return err
	}
	if err := gatehouse.ValidateDeviceID(id); err != nil {
		return err
	}
	revokedCerts := false
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		cur, err := tx.GetDevice(scope, id)
		if err != nil {
			return deviceNotFound(err, scope, id)
		}
		if err := checkIfMatch(ifMatch, cur); err != nil {
			return err
		}
		if !cur.Deletable() {
			return gatehouse.Errorf(gatehouse.EConflict, "device %q is %s and has been seen; decommission it first (POST .../state {\"state\":\"decommissioned\"})", id, cur.State)
		}
		now := s.timestamp()
		// Credentials outlive the device record (a revoked certificate stays
		// on the CRL); none may stay usable.
		if revokedCerts, err = s.revokeDevice(tx, ev, scope, id, p.Actor(), now); err != nil {
			return err
		}
		if err := tx.DeleteDevice(scope, id); err != nil {
			return err
		}
		return ev.append(scope, gatehouse.EventDeviceDeleted, p.Actor(), gatehouse.DeviceSubject(id), now,
			map[string]any{"id": id, "state": cur.State})
	})
	if err == nil && revokedCerts {
		if err := s.refreshCRL(ctx, scope); err != nil {
			s.log.Error("refresh CRL after delete", "scope", scope, "device_id", id, "err", err)
		}
	}
	return err
}

// DeviceHistory returns a device's lifecycle history, oldest first.
func (s *Service) DeviceHistory(ctx context.Context, p *gatehouse.Principal, scope, id string) ([]*gatehouse.StateChange, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	if err := gatehouse.ValidateDeviceID(id); err != nil {
		return nil, err
	}
	if _, err := s.store.GetDevice(ctx, scope, id); err != nil {
		return nil, deviceNotFound(err, scope, id)
	}
	h, err := s.store.DeviceHistory(ctx, scope, id)
	if h == nil && err == nil {
		h = []*gatehouse.StateChange{}
	}
	return h, err
}

// checkIfMatch compares an If-Match value with the device's etag. It accepts
// the header's quoted and weak forms.
func checkIfMatch(ifMatch string, d *gatehouse.Device) error {
	if etagMatches(ifMatch, d.ETag) {
		return nil
	}
	return gatehouse.Errorf(gatehouse.EPreconditionFailed, "device %q has changed since you read it (its etag is now %q); read it again and retry", d.ID, d.ETag)
}

// etagMatches reports whether an If-Match value (empty, "*", or a list of
// quoted, possibly weak, tags) admits the current etag.
func etagMatches(ifMatch, etag string) bool {
	if ifMatch == "" || ifMatch == "*" {
		return true
	}
	for _, tag := range strings.Split(ifMatch, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if strings.Trim(tag, `"`) == etag {
			return true
		}
	}
	return false
}

func deviceNotFound(err error, scope, id string) error {
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return gatehouse.Errorf(gatehouse.ENotFound, "device %q not found in scope %q", id, scope)
	}
	return err
}

func validateReason(r string) error {
	if len(r) > gatehouse.MaxReasonLen {
		return gatehouse.Errorf(gatehouse.ETooLarge, "reason is %d bytes; the limit is %d", len(r), gatehouse.MaxReasonLen)
	}
	if !utf8.ValidString(r) {
		return gatehouse.Errorf(gatehouse.EInvalid, "reason is not valid UTF-8")
	}
	return nil
}
