package provision

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/metrics"
)

// PSK identities (DTLS, as CoAP devices use them) name a device's symmetric
// key: "{scope}/{registrationId}", or "{scope}/{enrollmentId}/{registrationId}"
// where a scope has several symmetric-key groups. Scope IDs contain no '/';
// registration and enrollment IDs neither.

// PSKIdentity is a parsed PSK identity.
type PSKIdentity struct {
	Scope          string
	EnrollmentID   string // empty: the individual enrollment, or the scope's only group
	RegistrationID string
}

// String returns the identity as a device sends it.
func (id PSKIdentity) String() string {
	if id.EnrollmentID == "" {
		return id.Scope + "/" + id.RegistrationID
	}
	return id.Scope + "/" + id.EnrollmentID + "/" + id.RegistrationID
}

// ParsePSKIdentity parses a PSK identity. It checks only the shape: an
// identity that names nothing still parses (see DevicePSK).
func ParsePSKIdentity(s string) (PSKIdentity, error) {
	bad := gatehouse.Errorf(gatehouse.EUnauthenticated, "a PSK identity is {scope}/{registrationId} or {scope}/{enrollmentId}/{registrationId}")
	if len(s) > gatehouse.MaxScopeIDLen+2*gatehouse.MaxDeviceIDLen+2 {
		return PSKIdentity{}, bad
	}
	parts := strings.Split(s, "/")
	var id PSKIdentity
	switch len(parts) {
	case 2:
		id = PSKIdentity{Scope: parts[0], RegistrationID: parts[1]}
	case 3:
		id = PSKIdentity{Scope: parts[0], EnrollmentID: parts[1], RegistrationID: parts[2]}
		if gatehouse.ValidateDeviceID(id.EnrollmentID) != nil {
			return PSKIdentity{}, bad
		}
	default:
		return PSKIdentity{}, bad
	}
	if gatehouse.ValidateScopeID(id.Scope) != nil || gatehouse.ValidateDeviceID(id.RegistrationID) != nil {
		return PSKIdentity{}, bad
	}
	return id, nil
}

// decoySecret keys the decoy PSKs of identities that name no key. It is
// random per process: a decoy cannot be learned, and it stays the same for
// an identity while the process runs, as a real key would.
var decoySecret = func() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}()

// DecoyPSK is what an identity that names no key gets: a handshake with it
// fails exactly as one with a wrong key does (same alert, same work), so a
// prober cannot enumerate registration IDs. Front ends use it for
// identities that do not even parse.
func DecoyPSK(identity string) []byte {
	m := hmac.New(sha256.New, decoySecret)
	m.Write([]byte(identity))
	return m.Sum(nil)
}

// DevicePSK returns the DTLS pre-shared key of a device: the raw bytes of
// its symmetric key, i.e. an individual enrollment's primary key, or the key
// derived from a group's primary key for the registration ID (32 bytes).
// Without an enrollment ID the individual enrollment of the registration ID
// wins, then the scope's single enabled symmetric-key group; with several
// groups the identity is ambiguous and names no key.
//
// An identity that names no key (unknown, ambiguous, disabled enrollment)
// gets a decoy key and no error, so that the handshake fails as with a wrong
// key. An error means the lookup itself failed (the database, say).
func (s *Service) DevicePSK(ctx context.Context, scope, enrollmentID, registrationID string) ([]byte, error) {
	id := PSKIdentity{Scope: scope, EnrollmentID: enrollmentID, RegistrationID: registrationID}
	e, err := s.pskEnrollment(ctx, id)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return DecoyPSK(id.String()), nil
	}
	sec, err := s.enrollmentSecrets(e)
	if err != nil {
		return nil, err
	}
	if len(sec.PrimaryKey) == 0 {
		return DecoyPSK(id.String()), nil
	}
	if e.Type == gatehouse.EnrollmentIndividual {
		return sec.PrimaryKey, nil
	}
	return attest.DeriveDeviceKey(sec.PrimaryKey, registrationID), nil
}

// pskEnrollment finds the enabled symmetric-key enrollment a PSK identity
// names, or nil.
func (s *Service) pskEnrollment(ctx context.Context, id PSKIdentity) (*gatehouse.Enrollment, error) {
	if gatehouse.ValidateScopeID(id.Scope) != nil || gatehouse.ValidateDeviceID(id.RegistrationID) != nil {
		return nil, nil
	}
	if id.EnrollmentID == "" || id.EnrollmentID == id.RegistrationID {
		e, err := s.individual(ctx, Request{Scope: id.Scope, RegistrationID: id.RegistrationID}, gatehouse.AttestSymmetricKey)
		if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
			return nil, nil // the scope does not exist
		} else if err != nil {
			return nil, err
		}
		if e != nil {
			if !e.Enabled {
				return nil, nil
			}
			return e, nil
		}
	}
	groups, err := s.groupsOf(ctx, id.Scope, gatehouse.AttestSymmetricKey)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if id.EnrollmentID == "" {
		if len(groups) != 1 {
			return nil, nil
		}
		return groups[0], nil
	}
	for _, g := range groups {
		if g.ID == id.EnrollmentID {
			return g, nil
		}
	}
	return nil, nil
}

// PSKDevice returns the ID of the device a PSK identity names (the
// enrollment's device ID template applied to the registration ID), for a
// front end whose DTLS handshake already proved the key.
func (s *Service) PSKDevice(ctx context.Context, id PSKIdentity) (string, error) {
	e, err := s.pskEnrollment(ctx, id)
	if err != nil {
		return "", err
	}
	if e == nil {
		return "", gatehouse.Errorf(gatehouse.EUnauthenticated, "the PSK identity names no enrollment")
	}
	return e.DeviceIDFor(id.RegistrationID)
}

// RegisterPSK runs one registration for a device whose DTLS handshake proved
// the key DevicePSK returned for its identity: the handshake is the
// attestation. Everything else is Register's: rate limits, lockout, the
// enrollment's policy, webhooks, allocation, issuance, the commit.
func (s *Service) RegisterPSK(ctx context.Context, id PSKIdentity, req Request) (res *Result, err error) {
	defer func(start time.Time) { metrics.Observe(req.Dialect, gatehouse.ErrorCode(err), time.Since(start)) }(time.Now())
	req.Scope, req.EnrollmentID, req.RegistrationID = id.Scope, id.EnrollmentID, id.RegistrationID
	if err := gatehouse.ValidateScopeID(req.Scope); err != nil {
		return nil, errNoEnrollment
	}
	if err := gatehouse.ValidateDeviceID(req.RegistrationID); err != nil {
		return nil, err
	}
	if len(req.Payload) > 16<<10 {
		return nil, gatehouse.Errorf(gatehouse.ETooLarge, "payload is larger than 16 KiB")
	}
	if req.Source != "" {
		if ok, after := s.bySource.Allow("src:" + req.Source); !ok {
			return nil, rateLimited(after, "too many registrations from this address")
		}
	}
	g := newGuard(req.Scope+"/"+req.RegistrationID, req.Source)
	if ok, after := s.byID.Allow(g.pair); !ok {
		return nil, rateLimited(after, "too many registrations for this registration ID")
	}
	var csr *x509.CertificateRequest
	if len(req.CSR) > 0 {
		var err error
		if csr, err = ca.ParseCSR(req.CSR); err != nil {
			return nil, err
		}
	}
	e, err := s.pskEnrollment(ctx, id)
	if err != nil {
		return nil, err
	}
	if e == nil {
		// The key changed (or the enrollment went) since the handshake.
		return nil, errNoEnrollment
	}
	operationID := newOperationID()
	// The handshake proved the primary key (DevicePSK): record it as the
	// device's key credential, so that it can be revoked on its own.
	res, err = s.provision(ctx, req, &match{enrollment: e, kind: gatehouse.CredentialSymmetricKey, slot: "primary"}, csr, operationID)
	if err != nil {
		switch gatehouse.ErrorCode(err) {
		case gatehouse.EInternal, gatehouse.EUnavailable:
		default:
			if rerr := s.reg.RecordRegistrationFailure(ctx, req.Scope, req.RegistrationID, e.ID, operationID, err); rerr != nil {
				s.log.Error("record registration failure", "scope", req.Scope, "device_id", req.RegistrationID, "err", rerr)
			}
		}
		return nil, err
	}
	return res, nil
}
