package registry

import (
	"context"

	"github.com/gatehouse-iot/gatehouse"
)

// Events returns up to limit events of scope after sequence number after.
func (s *Service) Events(ctx context.Context, p *gatehouse.Principal, scope string, after int64, limit int) ([]*gatehouse.Event, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	if after < 0 {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "after must be a sequence number >= 0")
	}
	switch {
	case limit == 0:
		limit = DefaultPageSize
	case limit < 0 || limit > gatehouse.MaxEventPage:
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "limit must be between 1 and %d", gatehouse.MaxEventPage)
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	evs, err := s.store.ListEvents(ctx, scope, after, limit)
	if evs == nil && err == nil {
		evs = []*gatehouse.Event{}
	}
	return evs, err
}

// EventSignal returns a channel that is closed when this node next commits
// an event in scope. Streams wait on it between reads (and poll as well, to
// see events other nodes commit). Callers must have authorised access to
// scope first (Events does): the signal map holds one entry per scope
// waited on, so it must only ever be asked about scopes that exist.
func (s *Service) EventSignal(scope string) <-chan struct{} { return s.hub.signal(scope) }
