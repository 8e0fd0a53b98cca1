package provision

import (
	"context"
	"crypto/sha256"
	"errors"
	"strconv"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// match is an attested device's enrollment.
type match struct {
	enrollment   *gatehouse.Enrollment
	consumeToken bool
	kind         gatehouse.CredentialKind // what the device proved itself with
	slot         string                   // primary or secondary, for symmetric keys
}

var slots = []string{"primary", "secondary"}

var (
	// One message for both: a device (or a prober) cannot tell a missing
	// enrollment from a wrong secret by the text.
	errNoEnrollment = gatehouse.Errorf(gatehouse.EEnrollmentNotFound, "attestation failed")
	errAttestation  = gatehouse.Errorf(gatehouse.EAttestationFailed, "attestation failed")
)

// reasonError keeps why an attestation failed for the log, while the
// device sees only errAttestation.
type reasonError struct {
	reason string
	err    error
}

func (e *reasonError) Error() string { return e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

func failed(reason string) error { return &reasonError{reason: reason, err: errAttestation} }

func failureReason(err error) string {
	var r *reasonError
	if errors.As(err, &r) {
		return r.reason
	}
	if reason := attest.Reason(err); reason != "" {
		return reason
	}
	return gatehouse.ErrorCode(err)
}

// attest finds the enrollment the request's proof satisfies.
func (s *Service) attest(ctx context.Context, req Request) (*match, error) {
	switch {
	case req.SAS != "":
		return s.attestSAS(ctx, req)
	case req.Token != "":
		return s.attestToken(ctx, req)
	case len(req.Chain) > 0:
		return s.attestX509(ctx, req)
	}
	return nil, gatehouse.Errorf(gatehouse.EUnauthenticated, "no credentials: send a SAS token, a bootstrap token or a client certificate")
}

// individual returns the individual enrollment for a registration ID if it
// uses the given attestation type.
func (s *Service) individual(ctx context.Context, req Request, typ gatehouse.AttestationType) (*gatehouse.Enrollment, error) {
	e, err := s.store.GetEnrollment(ctx, req.Scope, req.RegistrationID)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if e.Type != gatehouse.EnrollmentIndividual || e.Attestation.Type != typ {
		return nil, nil
	}
	return e, nil
}

func (s *Service) attestSAS(ctx context.Context, req Request) (*match, error) {
	sas, err := attest.ParseSAS(req.SAS)
	if err != nil {
		return nil, err
	}
	if err := sas.CheckResource(req.Scope, req.RegistrationID); err != nil {
		return nil, err
	}
	now := s.now()
	if req.EnrollmentID == "" {
		e, err := s.individual(ctx, req, gatehouse.AttestSymmetricKey)
		if err != nil {
			return nil, err
		}
		if e != nil {
			sec, err := s.enrollmentSecrets(e)
			if err != nil {
				return nil, err
			}
			i, err := attest.VerifySASWithKeys(sas, [][]byte{sec.PrimaryKey, sec.SecondaryKey}, now, s.maxSASLifetime)
			if err != nil {
				return nil, err
			}
			return &match{enrollment: e, kind: gatehouse.CredentialSymmetricKey, slot: slots[i]}, nil
		}
	}
	return s.matchGroups(ctx, req.Scope, gatehouse.AttestSymmetricKey, func(all []*gatehouse.Enrollment) (*match, error) {
		groups := enabled(all)
		if len(groups) == 0 {
			return nil, errNoEnrollment
		}
		var lastErr error = errAttestation
		for _, g := range groups {
			if req.EnrollmentID != "" && g.ID != req.EnrollmentID {
				continue
			}
			sec, err := s.enrollmentSecrets(g)
			if err != nil {
				return nil, err
			}
			keys := [][]byte{attest.DeriveDeviceKey(sec.PrimaryKey, req.RegistrationID), attest.DeriveDeviceKey(sec.SecondaryKey, req.RegistrationID)}
			i, err := attest.VerifySASWithKeys(sas, keys, now, s.maxSASLifetime)
			if err == nil {
				return &match{enrollment: g, kind: gatehouse.CredentialSymmetricKey, slot: slots[i]}, nil
			}
			lastErr = err
		}
		return nil, lastErr
	})
}

func (s *Service) attestToken(ctx context.Context, req Request) (*match, error) {
	if len(req.Token) > 256 {
		return nil, failed("malformed")
	}
	e, err := s.individual(ctx, req, gatehouse.AttestToken)
	if err != nil {
		return nil, err
	}
	if e != nil {
		if !attest.TokenMatches(e.Attestation.TokenHash, req.Token) {
			return nil, failed("bad_token")
		}
		return &match{enrollment: e, consumeToken: true, kind: gatehouse.CredentialToken}, nil
	}
	return s.matchGroups(ctx, req.Scope, gatehouse.AttestToken, func(all []*gatehouse.Enrollment) (*match, error) {
		groups := enabled(all)
		if len(groups) == 0 {
			return nil, errNoEnrollment
		}
		for _, g := range groups {
			if req.EnrollmentID != "" && g.ID != req.EnrollmentID {
				continue
			}
			if attest.TokenMatches(g.Attestation.TokenHash, req.Token) {
				// Uses may lag here (the list is cached); the commit
				// counts against the stored ones.
				if g.Attestation.MaxUses > 0 && g.Attestation.Uses >= g.Attestation.MaxUses {
					return nil, failed("token_used_up")
				}
				return &match{enrollment: g, consumeToken: true, kind: gatehouse.CredentialToken}, nil
			}
		}
		return nil, failed("bad_token")
	})
}

func (s *Service) attestX509(ctx context.Context, req Request) (*match, error) {
	leaf, rest := req.Chain[0], req.Chain[1:]
	regID, err := attest.RegistrationIDFromCertificate(leaf)
	if err != nil || regID != req.RegistrationID {
		return nil, failed("cn_mismatch")
	}
	now := s.now()
	e, err := s.individual(ctx, req, gatehouse.AttestX509)
	if err != nil {
		return nil, err
	}
	if e != nil {
		if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
			return nil, failed("certificate_expired")
		}
		if attest.Thumbprint(leaf) != e.Attestation.Thumbprint {
			return nil, failed("thumbprint_mismatch")
		}
		return &match{enrollment: e}, nil
	}
	return s.matchGroups(ctx, req.Scope, gatehouse.AttestX509, func(groups []*gatehouse.Enrollment) (*match, error) {
		var best *gatehouse.Enrollment
		bestDepth := 0
		for _, g := range groups {
			if !g.Attestation.Verified {
				continue
			}
			anchor, err := parseCertPEM(g.Attestation.Certificate)
			if err != nil {
				continue
			}
			depth, err := attest.VerifyChain(leaf, rest, anchor, now)
			if err != nil {
				continue
			}
			if best == nil || depth < bestDepth {
				best, bestDepth = g, depth
			}
		}
		if best == nil {
			if len(groups) == 0 {
				return nil, errNoEnrollment
			}
			return nil, failed("untrusted_chain")
		}
		// The most specific enrollment wins, and a disabled one blocks: the
		// caller's CheckEnrollment refuses it.
		return &match{enrollment: best}, nil
	})
}

// enabled returns the enabled groups among all.
func enabled(all []*gatehouse.Enrollment) []*gatehouse.Enrollment {
	var out []*gatehouse.Enrollment
	for _, g := range all {
		if g.Enabled {
			out = append(out, g)
		}
	}
	return out
}

// matchGroups runs try on all the scope's groups of an attestation type,
// disabled ones included, as cached. When none matches (an attestation
// failure, or no enrollment) and the last read of the list ended
// groupRefreshAfter ago or more, it reads the list again, in a read that
// began after the miss, and tries once more. So a group created or changed
// on another node is found by the first device of it that misses once the
// list is that old (this node's own changes empty the cache at once); a
// device that misses sooner is refused that once. A flood of bad
// credentials costs at most one read of the list at a time, and none
// within groupRefreshAfter of the last, per scope and type: concurrent
// misses wait for the read in flight and use its list.
func (s *Service) matchGroups(ctx context.Context, scope string, typ gatehouse.AttestationType, try func([]*gatehouse.Enrollment) (*match, error)) (*match, error) {
	missed := s.now()
	l, err := s.groupsOfAll(ctx, scope, typ, groupCacheTTL)
	if err != nil {
		return nil, err
	}
	m, err := try(l.groups)
	switch gatehouse.ErrorCode(err) {
	case gatehouse.EAttestationFailed, gatehouse.EEnrollmentNotFound:
	default:
		return m, err
	}
	if age := s.now().Sub(l.ended); age >= 0 && age < groupRefreshAfter {
		return m, err
	}
	for l.started.Before(missed) {
		if l, err = s.readGroups(ctx, scope, typ); err != nil {
			return nil, err
		}
	}
	return try(l.groups)
}

// groupsOf returns the scope's enabled groups of an attestation type, as
// cached.
func (s *Service) groupsOf(ctx context.Context, scope string, typ gatehouse.AttestationType) ([]*gatehouse.Enrollment, error) {
	l, err := s.groupsOfAll(ctx, scope, typ, groupCacheTTL)
	return enabled(l.groups), err
}

// groupList is a read of a scope's groups of one attestation type.
type groupList struct {
	groups         []*gatehouse.Enrollment
	started, ended time.Time
	changes        uint64 // the registry's EnrollmentChanges when it started
}

// groupsOfAll returns all the scope's groups of an attestation type,
// disabled ones included: from the cache if that read ended less than
// maxAge ago and this node changed no enrollment since.
func (s *Service) groupsOfAll(ctx context.Context, scope string, typ gatehouse.AttestationType, maxAge time.Duration) (groupList, error) {
	now := s.now()
	s.mu.Lock()
	c, ok := s.groups[scope+"/"+string(typ)]
	s.mu.Unlock()
	if ok && c.changes == s.reg.EnrollmentChanges() && now.Sub(c.ended) < maxAge && now.Sub(c.ended) >= 0 {
		return c, nil
	}
	return s.readGroups(ctx, scope, typ)
}

// groupReadTimeout bounds a read of a scope's groups, which callers share.
const groupReadTimeout = 10 * time.Second

// readGroups reads the scope's groups of an attestation type and caches
// them. One read at a time per scope and type: callers that come while it
// runs wait for it (or for their ctx) and share its list, unless this node
// changed an enrollment since it began (the key holds the change count).
func (s *Service) readGroups(ctx context.Context, scope string, typ gatehouse.AttestationType) (groupList, error) {
	key := scope + "/" + string(typ)
	changes := s.reg.EnrollmentChanges()
	ch := s.refresh.DoChan(key+"/"+strconv.FormatUint(changes, 10), func() (any, error) {
		// Shared by the callers waiting, so not ended by one of them
		// leaving; bounded by its own timeout.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), groupReadTimeout)
		defer cancel()
		l := groupList{started: s.now(), changes: changes}
		var err error
		if l.groups, err = s.listGroups(rctx, scope, typ); err != nil {
			return groupList{}, err
		}
		// Stamped also when the read ended: a read slower than
		// groupRefreshAfter must not leave the list stale on arrival, and
		// every miss reading again.
		l.ended = s.now()
		s.mu.Lock()
		if len(s.groups) > 10_000 {
			clear(s.groups)
		}
		if cur, ok := s.groups[key]; !ok || !cur.started.After(l.started) {
			s.groups[key] = l
		}
		s.mu.Unlock()
		return l, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return groupList{}, r.Err
		}
		return r.Val.(groupList), nil
	case <-ctx.Done():
		return groupList{}, ctx.Err()
	}
}

// listGroups reads all the scope's groups of an attestation type (10,000
// at most).
func (s *Service) listGroups(ctx context.Context, scope string, typ gatehouse.AttestationType) ([]*gatehouse.Enrollment, error) {
	var all []*gatehouse.Enrollment
	after := ""
	for {
		batch, err := s.store.ListEnrollments(ctx, gatehouse.EnrollmentFilter{Scope: scope, Type: gatehouse.EnrollmentGroup, Attestation: typ, After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		all = append(all, batch...)
		if len(batch) < 1000 || len(all) >= 10_000 {
			return all, nil
		}
		after = batch[len(batch)-1].ID
	}
}

// enrollmentSecrets returns an enrollment's unsealed secrets, cached by etag.
func (s *Service) enrollmentSecrets(e *gatehouse.Enrollment) (*registry.EnrollmentSecrets, error) {
	// Keyed by the sealed blob, not the etag: the etag moves with every
	// settings change, the secrets only when resealed.
	key := e.Scope + "/" + e.ID
	digest := sha256.Sum256(e.SealedSecrets)
	s.mu.Lock()
	c, ok := s.secrets[key]
	s.mu.Unlock()
	if ok && c.digest == digest {
		return c.secrets, nil
	}
	sec, err := s.reg.EnrollmentSecrets(e)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.secrets) > 100_000 {
		clear(s.secrets)
	}
	s.secrets[key] = cachedSecrets{digest: digest, secrets: sec}
	s.mu.Unlock()
	return sec, nil
}
