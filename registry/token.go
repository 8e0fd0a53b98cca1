package registry

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"

	"github.com/gatehouse-iot/gatehouse"
)

// TokenRequest asks for a new API token.
type TokenRequest struct {
	Name string         `json:"name"`
	Role gatehouse.Role `json:"role"`
}

// TokenGrant is a newly created token: the stored record and the secret,
// which is shown once and never again.
type TokenGrant struct {
	*gatehouse.Token
	Secret string `json:"token"`
}

// errBadToken is the one answer to every failed authentication, so a caller
// cannot tell an unknown token from a revoked or mistyped one.
var errBadToken = gatehouse.Errorf(gatehouse.EUnauthenticated, "invalid or revoked API token")

// dummyHash keeps the failure path's cost close to the success path's.
var dummyHash = sha256.Sum256([]byte("gatehouse-dummy"))

// Authenticate resolves a bearer token to its principal.
func (s *Service) Authenticate(ctx context.Context, token string) (*gatehouse.Principal, error) {
	id, hash, err := gatehouse.ParseToken(token)
	if err != nil {
		return nil, errBadToken
	}
	t, err := s.store.GetToken(ctx, id)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		subtle.ConstantTimeCompare(dummyHash[:], hash)
		return nil, errBadToken
	} else if err != nil {
		return nil, err
	}
	if !t.Matches(hash) || t.RevokedAt != nil {
		return nil, errBadToken
	}
	return &gatehouse.Principal{TokenID: t.ID, Name: t.Name, Scope: t.Scope, Role: t.Role}, nil
}

// CreateToken creates an API token in scope. Scope admins (and global
// admins) may.
func (s *Service) CreateToken(ctx context.Context, p *gatehouse.Principal, scope string, req TokenRequest) (*TokenGrant, error) {
	if err := p.Authorize(scope, gatehouse.RoleAdmin); err != nil {
		return nil, err
	}
	if err := gatehouse.ValidateName("token name", req.Name); err != nil {
		return nil, err
	}
	if !req.Role.Valid() {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "role %q is not one of admin, operator, viewer", req.Role)
	}
	secret, id := gatehouse.NewTokenSecret()
	t := &gatehouse.Token{ID: id, Scope: scope, Name: req.Name, Role: req.Role, Hash: gatehouse.HashToken(secret),
		CreatedAt: s.timestamp(), CreatedBy: p.Actor()}
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		if _, err := tx.GetScope(scope); err != nil {
			return notFoundScope(err, scope)
		}
		if err := tx.CreateToken(t); err != nil {
			return err
		}
		return ev.append(scope, gatehouse.EventTokenCreated, p.Actor(), "tokens/"+t.ID, t.CreatedAt, t)
	})
	if err != nil {
		return nil, err
	}
	return &TokenGrant{Token: t, Secret: secret}, nil
}

// ListTokens lists a scope's tokens (never their secrets).
func (s *Service) ListTokens(ctx context.Context, p *gatehouse.Principal, scope string) ([]*gatehouse.Token, error) {
	if err := p.Authorize(scope, gatehouse.RoleAdmin); err != nil {
		return nil, err
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	return s.store.ListTokens(ctx, scope)
}

// RevokeToken revokes one of a scope's tokens; it stops authenticating at once.
func (s *Service) RevokeToken(ctx context.Context, p *gatehouse.Principal, scope, id string) error {
	if err := p.Authorize(scope, gatehouse.RoleAdmin); err != nil {
		return err
	}
	if err := gatehouse.ValidateScopeID(scope); err != nil {
		return err
	}
	t, err := s.store.GetToken(ctx, id)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound || err == nil && t.Scope != scope {
		return gatehouse.Errorf(gatehouse.ENotFound, "token %q not found in scope %q", id, scope)
	} else if err != nil {
		return err
	}
	if t.RevokedAt != nil {
		return nil // revoking is idempotent; the first revocation was audited
	}
	now := s.timestamp()
	return s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		if err := tx.RevokeToken(id, now); err != nil {
			return err
		}
		return ev.append(scope, gatehouse.EventTokenRevoked, p.Actor(), "tokens/"+id, now, map[string]string{"id": id})
	})
}

// CreateGlobalAdminToken creates an installation-wide admin token. It is for
// bootstrap (the first start writes one to DATA/admin-token) and has no
// caller to authorise.
func (s *Service) CreateGlobalAdminToken(ctx context.Context, name string) (*TokenGrant, error) {
	secret, id := gatehouse.NewTokenSecret()
	t := &gatehouse.Token{ID: id, Scope: gatehouse.GlobalScope, Name: name, Role: gatehouse.RoleAdmin,
		Hash: gatehouse.HashToken(secret), CreatedAt: s.timestamp(), CreatedBy: gatehouse.SystemActor}
	if err := s.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateToken(t) }); err != nil {
		return nil, err
	}
	return &TokenGrant{Token: t, Secret: secret}, nil
}

// AdoptGlobalAdminToken makes sure a token read from the admin-token file is
// known to the store: it is after a normal restart; it is not when the data
// directory's database was replaced (a new PostgreSQL, say). Then its hash is
// stored again, so the operator's file keeps working.
func (s *Service) AdoptGlobalAdminToken(ctx context.Context, token, name string) error {
	id, hash, err := gatehouse.ParseToken(token)
	if err != nil {
		return gatehouse.Errorf(gatehouse.EInvalid, "the admin token file does not hold a Gatehouse token")
	}
	t, err := s.store.GetToken(ctx, id)
	switch {
	case err == nil && t.Matches(hash) && t.Scope == gatehouse.GlobalScope:
		return nil
	case err == nil:
		return gatehouse.Errorf(gatehouse.EConflict, "the admin token file names token %s, which the database holds with another secret or scope", id)
	case gatehouse.ErrorCode(err) != gatehouse.ENotFound:
		return err
	}
	t = &gatehouse.Token{ID: id, Scope: gatehouse.GlobalScope, Name: name, Role: gatehouse.RoleAdmin,
		Hash: hash, CreatedAt: s.timestamp(), CreatedBy: gatehouse.SystemActor}
	err = s.store.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateToken(t) })
	if gatehouse.ErrorCode(err) == gatehouse.EConflict {
		return nil // another node adopted it first
	}
	return err
}

func notFoundScope(err error, scope string) error {
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return gatehouse.Errorf(gatehouse.ENotFound, "scope %q not found", scope)
	}
	return err
}
