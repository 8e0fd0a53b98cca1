package registry

import (
	"context"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// CreateScope creates a tenant. Only a global admin may.
func (s *Service) CreateScope(ctx context.Context, p *gatehouse.Principal, id string) (*gatehouse.Scope, error) {
	if err := p.Authorize(gatehouse.GlobalScope, gatehouse.RoleAdmin); err != nil {
		if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
			return nil, gatehouse.Errorf(gatehouse.EForbidden, "only an installation-wide admin token may create scopes")
		}
		return nil, err
	}
	return s.createScope(ctx, p.Actor(), id)
}

// EnsureScope creates scope id if it does not exist (used at start for the
// default scope). Safe to call from several nodes at once.
func (s *Service) EnsureScope(ctx context.Context, id string) error {
	if _, err := s.store.GetScope(ctx, id); err == nil {
		return nil
	}
	_, err := s.createScope(ctx, gatehouse.SystemActor, id)
	if gatehouse.ErrorCode(err) == gatehouse.EConflict {
		return nil
	}
	return err
}

func (s *Service) createScope(ctx context.Context, actor, id string) (*gatehouse.Scope, error) {
	if err := gatehouse.ValidateScopeID(id); err != nil {
		return nil, err
	}
	sc := &gatehouse.Scope{ID: id, CreatedAt: s.timestamp()}
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		if err := tx.CreateScope(sc); err != nil {
			if gatehouse.ErrorCode(err) == gatehouse.EConflict {
				return gatehouse.Errorf(gatehouse.EConflict, "scope %q already exists", id)
			}
			return err
		}
		if err := ev.append(id, gatehouse.EventScopeCreated, actor, "scopes/"+id, sc.CreatedAt, sc); err != nil {
			return err
		}
		return s.newScopeCA(tx, ev, id, actor, sc.CreatedAt)
	})
	s.cas.forget(id)
	if err != nil {
		return nil, err
	}
	return sc, nil
}

// GetScope returns a scope the caller may see.
func (s *Service) GetScope(ctx context.Context, p *gatehouse.Principal, id string) (*gatehouse.Scope, error) {
	if err := p.Authorize(id, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	return s.scope(ctx, id)
}

// ScopePolicy returns a scope's policy, for the device front ends (which
// act for devices, not principals).
func (s *Service) ScopePolicy(ctx context.Context, scope string) (gatehouse.ScopePolicy, error) {
	sc, err := s.scope(ctx, scope)
	if err != nil {
		return gatehouse.ScopePolicy{}, err
	}
	return sc.Policy, nil
}

// IssuancePolicy is ScopePolicy for the provisioning hot path: each node
// reads a scope's policy at most once a second (recheckInterval). A policy
// set on this node applies at once, one set on another node within a
// second. Followers of scope.updated events must use ScopePolicy: they
// would otherwise reload a stale copy.
func (s *Service) IssuancePolicy(ctx context.Context, scope string) (gatehouse.ScopePolicy, error) {
	if p, _, due := s.policies.get(scope); !due {
		return p, nil
	}
	checked := time.Now()
	sc, err := s.scope(ctx, scope)
	if err != nil {
		return gatehouse.ScopePolicy{}, err
	}
	s.policies.put(scope, sc.Policy, checked)
	return sc.Policy, nil
}

// scope returns the scope or a user-facing not-found error.
func (s *Service) scope(ctx context.Context, id string) (*gatehouse.Scope, error) {
	sc, err := s.store.GetScope(ctx, id)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "scope %q not found", id)
	}
	return sc, err
}

// ListScopes returns the scopes the caller may see: all of them for a global
// token, its own for a scoped one.
func (s *Service) ListScopes(ctx context.Context, p *gatehouse.Principal) ([]*gatehouse.Scope, error) {
	if p == nil {
		return nil, gatehouse.Errorf(gatehouse.EUnauthenticated, "authentication required")
	}
	if p.Scope != gatehouse.GlobalScope {
		sc, err := s.scope(ctx, p.Scope)
		if err != nil {
			return nil, err
		}
		return []*gatehouse.Scope{sc}, nil
	}
	return s.store.ListScopes(ctx)
}
