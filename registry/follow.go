package registry

import (
	"context"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// FollowEvents calls fn for every event committed after it starts, in
// every scope, until ctx ends: at once for commits on this node, within
// poll for commits by other nodes sharing the database. Events of one
// scope arrive in sequence order. Protocol front ends use it for live
// enforcement (a revoked certificate or a suspended device loses its
// session) and to push configuration changes.
func (s *Service) FollowEvents(ctx context.Context, poll time.Duration, fn func(*gatehouse.Event)) error {
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	last := map[string]int64{}
	// Start at the tail of every existing scope.
	if err := s.followScopes(ctx, last, nil); err != nil {
		return err
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		sig := s.hub.signal(anyScope)
		select {
		case <-ctx.Done():
			return nil
		case <-sig:
		case <-t.C:
		}
		if err := s.followScopes(ctx, last, fn); err != nil && ctx.Err() == nil {
			s.log.Error("follow events", "err", err)
		}
	}
}

// followScopes reads every scope's events after last[scope]; with fn nil
// it only moves last to the tail. A scope first seen while following (made
// by another node) is read from its beginning.
func (s *Service) followScopes(ctx context.Context, last map[string]int64, fn func(*gatehouse.Event)) error {
	scopes, err := s.store.ListScopes(ctx)
	if err != nil {
		return err
	}
	for _, sc := range scopes {
		after := last[sc.ID]
		for {
			evs, err := s.store.ListEvents(ctx, sc.ID, after, gatehouse.MaxEventPage)
			if err != nil {
				return err
			}
			for _, e := range evs {
				if fn != nil {
					fn(e)
				}
				after = e.Seq
			}
			if len(evs) < gatehouse.MaxEventPage {
				break
			}
		}
		last[sc.ID] = after
	}
	return nil
}
