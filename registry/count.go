package registry

import (
	"context"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// DeviceCounts is a scope's devices counted by one attribute.
type DeviceCounts struct {
	By     string           `json:"by"`
	Counts map[string]int64 `json:"counts"`
	Total  int64            `json:"total"`
}

// CountDevices counts a scope's devices by state, connection or a tag's
// value (by is "state", "connection" or "tag:<key>"; devices without the
// tag count under ""). One indexed GROUP BY.
func (s *Service) CountDevices(ctx context.Context, p *gatehouse.Principal, scope, by string) (*DeviceCounts, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	switch {
	case by == "state", by == "connection":
	case strings.HasPrefix(by, "tag:"):
		if err := gatehouse.ValidateTagKey(by[4:]); err != nil {
			return nil, err
		}
	default:
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "by must be state, connection or tag:<key>")
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	m, err := s.store.CountDevices(ctx, scope, gatehouse.DeviceCountBy(by))
	if err != nil {
		return nil, err
	}
	out := &DeviceCounts{By: by, Counts: m}
	for _, n := range m {
		out.Total += n
	}
	return out, nil
}

// FleetCounts is every scope's devices counted by state and by
// connection, for metrics.
func (s *Service) FleetCounts(ctx context.Context) (byState, byConn map[string]map[string]int64, err error) {
	if byState, err = s.store.CountAllDevices(ctx, "state"); err != nil {
		return nil, nil, err
	}
	if byConn, err = s.store.CountAllDevices(ctx, "connection"); err != nil {
		return nil, nil, err
	}
	return byState, byConn, nil
}

// ExpiringCredentials returns, per scope, the active credentials that
// expire within the window from now (for metrics).
func (s *Service) ExpiringCredentials(ctx context.Context, within time.Duration) (map[string]int64, error) {
	now := s.timestamp()
	return s.store.CountExpiringCredentials(ctx, now, now.Add(within))
}
