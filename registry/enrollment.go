package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
)

// EnrollmentSecrets are the secrets an enrollment keeps sealed at rest.
type EnrollmentSecrets struct {
	PrimaryKey        []byte `json:"primaryKey,omitempty"`
	SecondaryKey      []byte `json:"secondaryKey,omitempty"`
	PreProvisionKey   []byte `json:"preProvisionKey,omitempty"`
	AllocationHookKey []byte `json:"allocationHookKey,omitempty"`
}

func enrollmentAAD(scope, id string) []byte { return []byte("enrollment:" + scope + "/" + id) }

// Bounds on enrollments.
const (
	symmetricKeyBytes     = 64
	defaultTokenLifetime  = 30 * 24 * time.Hour
	maxSymmetricGroups    = 100 // each group costs one HMAC per registration
	defaultWebhookTimeout = 5 * time.Second
	maxWebhookTimeout     = 30 * time.Second
)

// EnrollmentCreate is the body of an enrollment creation. Secrets not
// supplied are generated and returned once.
type EnrollmentCreate struct {
	ID               string                      `json:"id"`
	Type             gatehouse.EnrollmentType    `json:"type"`
	Attestation      gatehouse.Attestation       `json:"attestation"`
	Enabled          *bool                       `json:"enabled,omitempty"`
	DeviceIDTemplate string                      `json:"deviceIdTemplate,omitempty"`
	InitialTags      map[string]string           `json:"initialTags,omitempty"`
	InitialConfig    json.RawMessage             `json:"initialConfig,omitempty"`
	Credentials      gatehouse.CredentialPolicy  `json:"credentials,omitempty"`
	Allocation       gatehouse.Allocation        `json:"allocation,omitempty"`
	Reprovision      gatehouse.ReprovisionPolicy `json:"reprovision,omitempty"`
	PreProvision     *gatehouse.Webhook          `json:"preProvisionWebhook,omitempty"`
	MaxRegistrations int                         `json:"maxRegistrations,omitempty"`
	ExpiresAt        *time.Time                  `json:"expiresAt,omitempty"`
}

// EnrollmentPatch changes an enrollment's policy. Absent members stay.
type EnrollmentPatch struct {
	Enabled          *bool                        `json:"enabled,omitempty"`
	DeviceIDTemplate *string                      `json:"deviceIdTemplate,omitempty"`
	InitialTags      map[string]string            `json:"initialTags,omitempty"`
	InitialConfig    json.RawMessage              `json:"initialConfig,omitempty"`
	Credentials      *gatehouse.CredentialPolicy  `json:"credentials,omitempty"`
	Allocation       *gatehouse.Allocation        `json:"allocation,omitempty"`
	Reprovision      *gatehouse.ReprovisionPolicy `json:"reprovision,omitempty"`
	PreProvision     *gatehouse.Webhook           `json:"preProvisionWebhook,omitempty"`
	MaxRegistrations *int                         `json:"maxRegistrations,omitempty"`
	ExpiresAt        *time.Time                   `json:"expiresAt,omitempty"` // the zero time removes the expiry
}

// CreateEnrollment creates an individual or group enrollment.
func (s *Service) CreateEnrollment(ctx context.Context, p *gatehouse.Principal, scope string, req EnrollmentCreate) (*gatehouse.Enrollment, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return nil, err
	}
	if s.keyring == nil {
		return nil, gatehouse.Errorf(gatehouse.EUnavailable, "this node has no master key configured")
	}
	now := s.timestamp()
	e, shown, err := s.newEnrollment(scope, req, p, now)
	if err != nil {
		return nil, err
	}
	err = s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		if _, err := tx.GetScope(scope); err != nil {
			return notFoundScope(err, scope)
		}
		if e.Type == gatehouse.EnrollmentGroup && e.Attestation.Type == gatehouse.AttestSymmetricKey {
			groups, err := s.store.ListEnrollments(ctx, gatehouse.EnrollmentFilter{Scope: scope, Type: gatehouse.EnrollmentGroup,
				Attestation: gatehouse.AttestSymmetricKey, Limit: maxSymmetricGroups + 1})
			if err != nil {
				return err
			}
			if len(groups) >= maxSymmetricGroups {
				return gatehouse.Errorf(gatehouse.EQuotaExceeded, "a scope may have at most %d symmetric-key groups (each costs one HMAC per registration)", maxSymmetricGroups)
			}
		}
		if err := tx.CreateEnrollment(e); err != nil {
			if gatehouse.ErrorCode(err) == gatehouse.EConflict {
				return gatehouse.Errorf(gatehouse.EConflict, "enrollment %q already exists in scope %q", e.ID, scope)
			}
			return err
		}
		return ev.append(scope, gatehouse.EventEnrollmentCreated, p.Actor(), "enrollments/"+e.ID, now, e)
	})
	if err != nil {
		return nil, err
	}
	out := *e
	out.Attestation.PrimaryKey, out.Attestation.SecondaryKey, out.Attestation.Token = shown.PrimaryKey, shown.SecondaryKey, shown.Token
	return &out, nil
}

// newEnrollment validates a creation and builds the enrollment to store,
// its secrets sealed; it returns the generated secrets to show once. The
// API's create and the bulk import both build enrollments here.
func (s *Service) newEnrollment(scope string, req EnrollmentCreate, p *gatehouse.Principal, now time.Time) (*gatehouse.Enrollment, gatehouse.Attestation, error) {
	e := &gatehouse.Enrollment{
		ID: req.ID, Scope: scope, Type: req.Type, Enabled: req.Enabled == nil || *req.Enabled,
		DeviceIDTemplate: req.DeviceIDTemplate, InitialTags: req.InitialTags, InitialConfig: req.InitialConfig,
		Credentials: req.Credentials, Allocation: req.Allocation, Reprovision: req.Reprovision, PreProvision: req.PreProvision,
		MaxRegistrations: req.MaxRegistrations, ExpiresAt: req.ExpiresAt, CreatedAt: now, UpdatedAt: now, ETag: newETag(),
	}
	var none gatehouse.Attestation
	if err := gatehouse.ValidateDeviceID(e.ID); err != nil {
		return nil, none, gatehouse.Errorf(gatehouse.EInvalidID, "enrollment id: %s", gatehouse.ErrorMessage(err))
	}
	if e.Type != gatehouse.EnrollmentIndividual && e.Type != gatehouse.EnrollmentGroup {
		return nil, none, gatehouse.Errorf(gatehouse.EInvalid, "type must be individual or group")
	}
	var secrets EnrollmentSecrets
	shown, err := s.prepareAttestation(e, req.Attestation, &secrets, p, now)
	if err != nil {
		return nil, none, err
	}
	if err := s.preparePolicy(e, &secrets, nil); err != nil {
		return nil, none, err
	}
	if e.ExpiresAt != nil && !e.ExpiresAt.After(now) {
		return nil, none, gatehouse.Errorf(gatehouse.EInvalid, "expiresAt is in the past")
	}
	if err := s.sealEnrollment(e, &secrets); err != nil {
		return nil, none, err
	}
	return e, shown, nil
}

// prepareAttestation validates the attestation, generates secrets not
// supplied, and moves secrets out of the stored record. It returns the
// secrets to show once.
func (s *Service) prepareAttestation(e *gatehouse.Enrollment, a gatehouse.Attestation, secrets *EnrollmentSecrets, p *gatehouse.Principal, now time.Time) (gatehouse.Attestation, error) {
	var shown gatehouse.Attestation
	stored := gatehouse.Attestation{Type: a.Type}
	switch a.Type {
	case gatehouse.AttestSymmetricKey:
		for _, k := range []struct {
			in  string
			out *[]byte
			sh  *string
		}{{a.PrimaryKey, &secrets.PrimaryKey, &shown.PrimaryKey}, {a.SecondaryKey, &secrets.SecondaryKey, &shown.SecondaryKey}} {
			if k.in == "" {
				b := make([]byte, symmetricKeyBytes)
				rand.Read(b)
				*k.out, *k.sh = b, base64.StdEncoding.EncodeToString(b)
				continue
			}
			b, err := base64.StdEncoding.DecodeString(k.in)
			if err != nil || len(b) < 16 || len(b) > 128 {
				return shown, gatehouse.Errorf(gatehouse.EInvalid, "symmetric keys must be base64 of 16 to 128 bytes; omit them to have strong ones generated")
			}
			*k.out = b
		}
	case gatehouse.AttestX509:
		if a.Certificate == "" && a.Thumbprint == "" {
			return shown, gatehouse.Errorf(gatehouse.EInvalid, "an x509 attestation needs certificate (PEM) or, for an individual enrollment, thumbprint")
		}
		if a.Certificate != "" {
			cert, err := parseOneCertificate(a.Certificate)
			if err != nil {
				return shown, err
			}
			stored.Certificate = string(pemCert(cert.Raw))
			sum := sha256.Sum256(cert.Raw)
			stored.Thumbprint = hex.EncodeToString(sum[:])
			if e.Type == gatehouse.EnrollmentGroup && !(cert.IsCA && cert.BasicConstraintsValid) {
				return shown, gatehouse.Errorf(gatehouse.EInvalid, "a group x509 enrollment needs a CA or intermediate certificate (basicConstraints CA:TRUE)")
			}
			if e.Type == gatehouse.EnrollmentIndividual && cert.Subject.CommonName != e.ID {
				return shown, gatehouse.Errorf(gatehouse.EInvalid, "the certificate's CN %q must equal the registration ID %q", cert.Subject.CommonName, e.ID)
			}
		} else {
			if e.Type == gatehouse.EnrollmentGroup {
				return shown, gatehouse.Errorf(gatehouse.EInvalid, "a group x509 enrollment needs the CA certificate itself, not a thumbprint")
			}
			tp, err := attest.NormalizeThumbprint(a.Thumbprint)
			if err != nil {
				return shown, gatehouse.Errorf(gatehouse.EInvalid, "thumbprint must be the SHA-256 of the certificate, 64 hex digits")
			}
			stored.Thumbprint = tp
		}
		if e.Type == gatehouse.EnrollmentGroup {
			// Possession of the CA key is proved with a verification code,
			// unless an admin vouches for it at creation.
			if a.Verified && p.Role != gatehouse.RoleAdmin {
				return shown, gatehouse.Errorf(gatehouse.EForbidden, "only an admin may mark a CA verified without proof of possession")
			}
			stored.Verified = a.Verified
		}
	case gatehouse.AttestToken:
		tok := a.Token
		if tok == "" {
			b := make([]byte, 32)
			rand.Read(b)
			tok = base64.RawURLEncoding.EncodeToString(b)
		} else if len(tok) < 16 || len(tok) > 256 {
			return shown, gatehouse.Errorf(gatehouse.EInvalid, "a bootstrap token must be 16 to 256 characters; omit it to have a strong one generated")
		}
		shown.Token = tok
		sum := sha256.Sum256([]byte(tok))
		stored.TokenHash = sum[:]
		stored.MaxUses = a.MaxUses
		if a.MaxUses < 0 || a.MaxUses > 1_000_000 {
			return shown, gatehouse.Errorf(gatehouse.EInvalid, "maxUses must be between 1 and 1000000 (omitted: 1)")
		}
		if stored.MaxUses == 0 {
			stored.MaxUses = 1
		}
		stored.ExpiresAt = a.ExpiresAt
		if stored.ExpiresAt == nil {
			t := now.Add(defaultTokenLifetime)
			stored.ExpiresAt = &t
		} else if !stored.ExpiresAt.After(now) {
			return shown, gatehouse.Errorf(gatehouse.EInvalid, "expiresAt is in the past")
		}
		t := stored.ExpiresAt.UTC().Truncate(time.Microsecond)
		stored.ExpiresAt = &t
	default:
		return shown, gatehouse.Errorf(gatehouse.EInvalid, "attestation.type must be symmetric_key, x509 or token")
	}
	e.Attestation = stored
	return shown, nil
}

func parseOneCertificate(p string) (*x509.Certificate, error) {
	if len(p) > 64<<10 {
		return nil, gatehouse.Errorf(gatehouse.ETooLarge, "certificate PEM is larger than 64 KiB")
	}
	b, _ := pem.Decode([]byte(p))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "expected one PEM CERTIFICATE block")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, gatehouse.Errorf(gatehouse.EInvalidPEM, "the certificate does not parse: %v", err)
	}
	return c, nil
}

// preparePolicy validates and defaults the non-attestation members. prev
// is the stored enrollment e changes (nil for a new one): the endpoints and
// webhook URLs it already holds are kept as they are, so that an
// enrollment stored under an earlier version's rules stays patchable
// (disabled, first of all).
func (s *Service) preparePolicy(e *gatehouse.Enrollment, secrets *EnrollmentSecrets, prev *gatehouse.Enrollment) error {
	if e.DeviceIDTemplate != "" {
		if _, err := e.DeviceIDFor("x"); err != nil && gatehouse.ErrorCode(err) == gatehouse.EInvalid {
			return err
		}
		if len(e.DeviceIDTemplate) > 256 {
			return gatehouse.Errorf(gatehouse.ETooLarge, "deviceIdTemplate is longer than 256 bytes")
		}
	}
	if e.InitialTags == nil {
		e.InitialTags = map[string]string{}
	}
	if err := gatehouse.ValidateTags(e.InitialTags); err != nil {
		return err
	}
	if bytes.Equal(bytes.TrimSpace(e.InitialConfig), []byte("null")) {
		e.InitialConfig = nil
	}
	e.InitialConfig = gatehouse.CompactJSON(e.InitialConfig)
	if err := gatehouse.ValidateJSONObject("initialConfig", e.InitialConfig, gatehouse.MaxConfigBytes); err != nil {
		return err
	}
	switch e.Credentials.Certificate {
	case "":
		e.Credentials.Certificate = gatehouse.CertOptional
	case gatehouse.CertRequired, gatehouse.CertOptional, gatehouse.CertNone:
	default:
		return gatehouse.Errorf(gatehouse.EInvalid, "credentials.certificate must be required, optional or none")
	}
	if v := e.Credentials.Validity; v != 0 && (time.Duration(v) < time.Hour || time.Duration(v) > gatehouse.MaxCertValidity) {
		return gatehouse.Errorf(gatehouse.EInvalid, "credentials.validity must be between 1h and %s", gatehouse.MaxCertValidity)
	}
	switch e.Reprovision {
	case "":
		e.Reprovision = gatehouse.ReprovisionMigrate
	case gatehouse.ReprovisionMigrate, gatehouse.ReprovisionReset, gatehouse.ReprovisionNever:
	default:
		return gatehouse.Errorf(gatehouse.EInvalid, "reprovision must be migrate, reset or never")
	}
	if e.MaxRegistrations < 0 {
		return gatehouse.Errorf(gatehouse.EInvalid, "maxRegistrations must be 0 (unlimited) or more")
	}
	if e.ExpiresAt != nil {
		t := e.ExpiresAt.UTC().Truncate(time.Microsecond)
		e.ExpiresAt = &t
	}
	a := &e.Allocation
	switch a.Policy {
	case "":
		a.Policy = gatehouse.AllocateStatic
	case gatehouse.AllocateStatic, gatehouse.AllocateHashed, gatehouse.AllocateCustom:
	default:
		return gatehouse.Errorf(gatehouse.EInvalid, "allocation.policy must be static, hashed or custom")
	}
	if len(a.Endpoints) > 100 {
		return gatehouse.Errorf(gatehouse.ETooLarge, "at most 100 allocation endpoints")
	}
	for i := range a.Endpoints {
		ep := &a.Endpoints[i]
		if err := gatehouse.ValidateEndpointHost(ep.Host); err != nil && !hasEndpoint(prev, ep.Host) {
			return err
		}
		if ep.Weight < 0 || ep.Weight > 1000 {
			return gatehouse.Errorf(gatehouse.EInvalid, "endpoint weights must be between 0 and 1000")
		}
		if ep.Weight == 0 {
			ep.Weight = 1
		}
	}
	if a.Policy == gatehouse.AllocateCustom && a.Webhook == nil {
		return gatehouse.Errorf(gatehouse.EInvalid, "custom allocation needs allocation.webhook")
	}
	var err error
	var prevAlloc, prevPre *gatehouse.Webhook
	if prev != nil {
		prevAlloc, prevPre = prev.Allocation.Webhook, prev.PreProvision
	}
	if secrets.AllocationHookKey, err = prepareWebhook(a.Webhook, secrets.AllocationHookKey, prevAlloc); err != nil {
		return err
	}
	if secrets.PreProvisionKey, err = prepareWebhook(e.PreProvision, secrets.PreProvisionKey, prevPre); err != nil {
		return err
	}
	return nil
}

// hasEndpoint reports whether the stored enrollment prev (nil for none)
// already names host as an endpoint.
func hasEndpoint(prev *gatehouse.Enrollment, host string) bool {
	return prev != nil && slices.ContainsFunc(prev.Allocation.Endpoints, func(ep gatehouse.Endpoint) bool { return ep.Host == host })
}

// prepareWebhook validates a webhook and takes its secret out of the record.
// The URL of stored, the webhook it replaces, is not checked again.
func prepareWebhook(w *gatehouse.Webhook, prev []byte, stored *gatehouse.Webhook) ([]byte, error) {
	if w == nil {
		return nil, nil
	}
	if err := validateWebhookURL(w.URL); err != nil && (stored == nil || stored.URL != w.URL) {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "webhook %s", gatehouse.ErrorMessage(err))
	}
	if w.Timeout == 0 {
		w.Timeout = gatehouse.Duration(defaultWebhookTimeout)
	} else if w.Timeout < 0 || time.Duration(w.Timeout) > maxWebhookTimeout {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "webhook timeout must be at most %s", maxWebhookTimeout)
	}
	key := prev
	if w.Secret != "" {
		if len(w.Secret) < 16 {
			return nil, gatehouse.Errorf(gatehouse.EInvalid, "a webhook secret must be at least 16 characters")
		}
		key = []byte(w.Secret)
	}
	if key == nil {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "a webhook needs a secret (16+ characters) to sign its requests")
	}
	w.Secret = ""
	return key, nil
}

func (s *Service) sealEnrollment(e *gatehouse.Enrollment, secrets *EnrollmentSecrets) error {
	raw, err := json.Marshal(secrets)
	if err != nil {
		return err
	}
	e.SealedSecrets, err = s.keyring.Seal(raw, enrollmentAAD(e.Scope, e.ID))
	clear(raw)
	if err != nil {
		return fmt.Errorf("seal enrollment secrets: %w", err)
	}
	return nil
}

// wipe clears the secrets' bytes.
func (e *EnrollmentSecrets) wipe() {
	clear(e.PrimaryKey)
	clear(e.SecondaryKey)
	clear(e.PreProvisionKey)
	clear(e.AllocationHookKey)
}

// EnrollmentSecrets opens an enrollment's sealed secrets (for the
// provisioning service; never for an API response).
func (s *Service) EnrollmentSecrets(e *gatehouse.Enrollment) (*EnrollmentSecrets, error) {
	if s.keyring == nil {
		return nil, fmt.Errorf("no keyring")
	}
	raw, err := s.keyring.Open(e.SealedSecrets, enrollmentAAD(e.Scope, e.ID))
	if err != nil {
		return nil, fmt.Errorf("open enrollment %s/%s secrets: %w", e.Scope, e.ID, err)
	}
	defer raw.Wipe()
	var sec EnrollmentSecrets
	if err := json.Unmarshal(raw.Reveal(), &sec); err != nil {
		return nil, fmt.Errorf("decode enrollment secrets: %w", err)
	}
	return &sec, nil
}

// GetEnrollment returns an enrollment (without secrets).
func (s *Service) GetEnrollment(ctx context.Context, p *gatehouse.Principal, scope, id string) (*gatehouse.Enrollment, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	if err := gatehouse.ValidateDeviceID(id); err != nil {
		return nil, err
	}
	e, err := s.store.GetEnrollment(ctx, scope, id)
	return e, enrollmentNotFound(err, scope, id)
}

func enrollmentNotFound(err error, scope, id string) error {
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return gatehouse.Errorf(gatehouse.ENotFound, "enrollment %q not found in scope %q", id, scope)
	}
	return err
}

// EnrollmentPage is one page of enrollments.
type EnrollmentPage struct {
	Items      []*gatehouse.Enrollment `json:"items"`
	NextCursor string                  `json:"nextCursor,omitempty"`
}

// ListEnrollments lists a scope's enrollments.
func (s *Service) ListEnrollments(ctx context.Context, p *gatehouse.Principal, scope string, typ gatehouse.EnrollmentType, cursor string, limit int) (*EnrollmentPage, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	after, err := gatehouse.DecodeCursor(cursor)
	if err != nil {
		return nil, err
	}
	switch {
	case limit == 0:
		limit = DefaultPageSize
	case limit < 0 || limit > MaxPageSize:
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "limit must be between 1 and %d", MaxPageSize)
	}
	if typ != "" && typ != gatehouse.EnrollmentGroup && typ != gatehouse.EnrollmentIndividual {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "type must be individual or group")
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	items, err := s.store.ListEnrollments(ctx, gatehouse.EnrollmentFilter{Scope: scope, Type: typ, After: after, Limit: limit + 1})
	if err != nil {
		return nil, err
	}
	page := &EnrollmentPage{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.NextCursor = gatehouse.EncodeCursor(page.Items[limit-1].ID)
	}
	if page.Items == nil {
		page.Items = []*gatehouse.Enrollment{}
	}
	return page, nil
}

// PatchEnrollment changes an enrollment's policy (enable/disable included).
func (s *Service) PatchEnrollment(ctx context.Context, p *gatehouse.Principal, scope, id string, patch EnrollmentPatch, ifMatch string) (*gatehouse.Enrollment, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return nil, err
	}
	if err := gatehouse.ValidateDeviceID(id); err != nil {
		return nil, err
	}
	var out *gatehouse.Enrollment
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		cur, err := tx.GetEnrollment(scope, id)
		if err != nil {
			return enrollmentNotFound(err, scope, id)
		}
		if !etagMatches(ifMatch, cur.ETag) {
			return gatehouse.Errorf(gatehouse.EPreconditionFailed, "enrollment %q has changed since you read it; read it again and retry", id)
		}
		e := *cur
		if patch.Enabled != nil {
			e.Enabled = *patch.Enabled
		}
		if patch.DeviceIDTemplate != nil {
			e.DeviceIDTemplate = *patch.DeviceIDTemplate
		}
		if patch.InitialTags != nil {
			e.InitialTags = patch.InitialTags
		}
		if len(patch.InitialConfig) > 0 {
			e.InitialConfig = patch.InitialConfig
		}
		if patch.Credentials != nil {
			e.Credentials = *patch.Credentials
		}
		if patch.Allocation != nil {
			e.Allocation = *patch.Allocation
		}
		if patch.Reprovision != nil {
			e.Reprovision = *patch.Reprovision
		}
		if patch.PreProvision != nil {
			e.PreProvision = patch.PreProvision
			if patch.PreProvision.URL == "" {
				e.PreProvision = nil
			}
		}
		if patch.MaxRegistrations != nil {
			e.MaxRegistrations = *patch.MaxRegistrations
		}
		if patch.ExpiresAt != nil {
			e.ExpiresAt = patch.ExpiresAt
			if patch.ExpiresAt.IsZero() {
				e.ExpiresAt = nil
			}
		}
		secrets, err := s.EnrollmentSecrets(cur)
		if err != nil {
			return err
		}
		if err := s.preparePolicy(&e, secrets, cur); err != nil {
			return err
		}
		if err := s.sealEnrollment(&e, secrets); err != nil {
			return err
		}
		e.UpdatedAt = s.timestamp()
		e.ETag = newETag()
		if err := tx.UpdateEnrollment(&e, cur.ETag); err != nil {
			return err
		}
		out = &e
		return ev.append(scope, gatehouse.EventEnrollmentUpdated, p.Actor(), "enrollments/"+id, e.UpdatedAt, &e)
	})
	return out, err
}

// DeleteEnrollment removes an enrollment. Devices it admitted stay.
func (s *Service) DeleteEnrollment(ctx context.Context, p *gatehouse.Principal, scope, id string) error {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return err
	}
	if err := gatehouse.ValidateDeviceID(id); err != nil {
		return err
	}
	return s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		if _, err := tx.GetEnrollment(scope, id); err != nil {
			return enrollmentNotFound(err, scope, id)
		}
		if err := tx.DeleteEnrollment(scope, id); err != nil {
			return err
		}
		return ev.append(scope, gatehouse.EventEnrollmentDeleted, p.Actor(), "enrollments/"+id, s.timestamp(), map[string]string{"id": id})
	})
}

// NewVerificationCode starts proof of possession for a group CA: the
// operator signs a certificate whose CN is the code with the CA's key.
func (s *Service) NewVerificationCode(ctx context.Context, p *gatehouse.Principal, scope, id string) (string, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return "", err
	}
	code := attest.NewVerificationCode()
	err := s.mutateX509Group(ctx, p, scope, id, func(e *gatehouse.Enrollment) error {
		e.Attestation.VerificationCode = code
		return nil
	})
	return code, err
}

// VerifyCA completes proof of possession: proofPEM is a certificate signed
// by the group's CA whose subject CN is the current verification code.
func (s *Service) VerifyCA(ctx context.Context, p *gatehouse.Principal, scope, id, proofPEM string) (*gatehouse.Enrollment, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return nil, err
	}
	proof, err := parseOneCertificate(proofPEM)
	if err != nil {
		return nil, err
	}
	var out *gatehouse.Enrollment
	err = s.mutateX509Group(ctx, p, scope, id, func(e *gatehouse.Enrollment) error {
		caCert, err := parseOneCertificate(e.Attestation.Certificate)
		if err != nil {
			return err
		}
		if e.Attestation.VerificationCode == "" {
			return gatehouse.Errorf(gatehouse.EPreconditionFailed, "ask for a verification code first (POST .../verification-code)")
		}
		if err := attest.VerifyPossession(caCert, proof, e.Attestation.VerificationCode, s.timestamp()); err != nil {
			return err
		}
		e.Attestation.Verified = true
		e.Attestation.VerificationCode = ""
		out = e
		return nil
	})
	return out, err
}

func (s *Service) mutateX509Group(ctx context.Context, p *gatehouse.Principal, scope, id string, fn func(e *gatehouse.Enrollment) error) error {
	if err := gatehouse.ValidateDeviceID(id); err != nil {
		return err
	}
	return s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		cur, err := tx.GetEnrollment(scope, id)
		if err != nil {
			return enrollmentNotFound(err, scope, id)
		}
		if cur.Type != gatehouse.EnrollmentGroup || cur.Attestation.Type != gatehouse.AttestX509 {
			return gatehouse.Errorf(gatehouse.EInvalid, "only group x509 enrollments have a CA to verify")
		}
		e := *cur
		if err := fn(&e); err != nil {
			return err
		}
		e.UpdatedAt = s.timestamp()
		e.ETag = newETag()
		if err := tx.UpdateEnrollment(&e, cur.ETag); err != nil {
			return err
		}
		return ev.append(scope, gatehouse.EventEnrollmentUpdated, p.Actor(), "enrollments/"+id, e.UpdatedAt, &e)
	})
}

// RotateEnrollmentKey replaces one slot ("primary" or "secondary") of a
// symmetric-key enrollment with a fresh key and returns it (once). The
// other slot keeps working, so devices move to the new key one by one:
// rotate the secondary, move devices to it, then rotate the primary.
func (s *Service) RotateEnrollmentKey(ctx context.Context, p *gatehouse.Principal, scope, id, slot string) (string, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return "", err
	}
	if err := gatehouse.ValidateDeviceID(id); err != nil {
		return "", err
	}
	if slot != "primary" && slot != "secondary" {
		return "", gatehouse.Errorf(gatehouse.EInvalid, "slot must be primary or secondary")
	}
	key := make([]byte, symmetricKeyBytes)
	rand.Read(key)
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		cur, err := tx.GetEnrollment(scope, id)
		if err != nil {
			return enrollmentNotFound(err, scope, id)
		}
		if cur.Attestation.Type != gatehouse.AttestSymmetricKey {
			return gatehouse.Errorf(gatehouse.EInvalid, "enrollment %q does not use symmetric keys", id)
		}
		secrets, err := s.EnrollmentSecrets(cur)
		if err != nil {
			return err
		}
		if slot == "primary" {
			secrets.PrimaryKey = key
		} else {
			secrets.SecondaryKey = key
		}
		e := *cur
		if err := s.sealEnrollment(&e, secrets); err != nil {
			return err
		}
		e.UpdatedAt, e.ETag = s.timestamp(), newETag()
		if err := tx.UpdateEnrollment(&e, cur.ETag); err != nil {
			return err
		}
		return ev.append(scope, gatehouse.EventEnrollmentUpdated, p.Actor(), "enrollments/"+id, e.UpdatedAt,
			map[string]any{"id": id, "rotated": slot})
	})
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(key), nil
}
