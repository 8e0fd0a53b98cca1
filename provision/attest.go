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
// failure, or no enrollment) and the list was read groupRefreshAfter ago
// or more, it reads the list again and tries once more: a group created or
// changed moments ago, on another node, is found at once (this node's own
// changes empty the cache). A flood of bad credentials costs at most one
// read of the list at a time and per groupRefreshAfter, per scope and
// type: concurrent misses wait for the read in flight and use its list.
func (s *Service) matchGroups(ctx context.Context, scope string, typ gatehouse.AttestationType, try func([]*gatehouse.Enrollment) (*match, error)) (*match, error) {
	groups, at, err := s.groupsOfAll(ctx, scope, typ, groupCacheTTL)
	if err != nil {
		return nil, err
	}
	m, err := try(groups)
	switch gatehouse.ErrorCode(err) {
	case gatehouse.EAttestationFailed, gatehouse.EEnrollmentNotFound:
	default:
		return m, err
	}
	if age := s.now().Sub(at); age >= 0 && age < groupRefreshAfter {
		return m, err
	}
	if groups, _, err = s.groupsOfAll(ctx, scope, typ, groupRefreshAfter); err != nil {
		return nil, err
	}
	return try(groups)
}

// groupsOf returns the scope's enabled groups of an attestation type, as
// cached.
func (s *Service) groupsOf(ctx context.Context, scope string, typ gatehouse.AttestationType) ([]*gatehouse.Enrollment, error) {
	all, _, err := s.groupsOfAll(ctx, scope, typ, groupCacheTTL)
	return enabled(all), err
}

// groupsOfAll returns all the scope's groups of an attestation type,
// disabled ones included, and when they were read (when the read ended):
// from the cache if that read is younger than maxAge and this node changed
// no enrollment since.
func (s *Service) groupsOfAll(ctx context.Context, scope string, typ gatehouse.AttestationType, maxAge time.Duration) ([]*gatehouse.Enrollment, time.Time, error) {
	key := scope + "/" + string(typ)
	now := s.now()
	changes := s.reg.EnrollmentChanges()
	s.mu.Lock()
	c, ok := s.groups[key]
	s.mu.Unlock()
	if ok && c.changes == changes && now.Sub(c.at) < maxAge && now.Sub(c.at) >= 0 {
		return c.groups, c.at, nil
	}
	// One read at a time per scope and type: callers that come while it
	// runs wait for it and share its list, unless this node changed an
	// enrollment since it began (they read again: the key holds changes).
	type result struct {
		groups []*gatehouse.Enrollment
		read   time.Time
	}
	v, err, _ := s.refresh.Do(key+"/"+strconv.FormatUint(changes, 10), func() (any, error) {
		// Shared by the callers waiting: not ended by one leaving.
		all, err := s.listGroups(context.WithoutCancel(ctx), scope, typ)
		if err != nil {
			return nil, err
		}
		// Stamped when the read ended: one slower than groupRefreshAfter
		// must not leave the list stale on arrival, and every miss
		// re-reading.
		read := s.now()
		s.mu.Lock()
		if len(s.groups) > 10_000 {
			clear(s.groups)
		}
		s.groups[key] = cachedGroups{at: read, changes: changes, groups: all}
		s.mu.Unlock()
		return result{all, read}, nil
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	r := v.(result)
	return r.groups, r.read, nil
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
	// Keyed by the sealed blob, not the etag: counters change the etag at
	// every registration, the secrets only when resealed.
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
