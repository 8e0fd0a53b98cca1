package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
)

// EventEnrollmentsImported summarises one committed batch of an enrollment
// import: the enrollments it created, updated and deleted (by ID; never
// their secrets).
const EventEnrollmentsImported = "enrollments.imported"

// Why an enrollment import never generates a secret it would have to show:
// the only place to show it would be the result stream and the result file
// the CLI writes next to the input. That file is a log, kept, mailed and
// attached to tickets; a re-run overwrites it with "unchanged" rows, and an
// import that breaks off between a commit and its results loses the keys of
// enrollments that then exist (usable by nobody, or by whoever later finds
// a copy). Keys and tokens for individual enrollments are made where the
// devices are made, and flashed into them there; the import file that
// carries them is already a secret the operator handles. So an import takes
// symmetric keys (primaryKey; secondaryKey optional) and bootstrap tokens
// from the file and refuses a row without them, and no result, summary,
// event, log line or error message ever holds a secret. The one secret an
// import makes up is an absent secondaryKey: random, shown to nobody, so
// the slot is unusable until a later import (mode update) gives one,
// which is what an absent key should mean.

// ImportEnrollments reads req.Body (CSV or NDJSON individual enrollments)
// and applies it as ImportDevices does devices: in batches of
// ImportBatchSize, one transaction each, one result per record in file
// order, a bad record never stopping the others. Secrets are sealed as
// CreateEnrollment seals them; see above for why none is ever shown.
func (s *Service) ImportEnrollments(ctx context.Context, p *gatehouse.Principal, scope string, req ImportRequest, emit func([]ImportResult) error) (*ImportSummary, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return nil, err
	}
	if !req.Mode.Valid() {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "unknown import mode %q; use create, upsert, update or delete", truncate(string(req.Mode), 32))
	}
	if s.keyring == nil {
		return nil, gatehouse.Errorf(gatehouse.EUnavailable, "this node has no master key configured")
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	rd, err := NewEnrollmentReader(req.Body, req.Format)
	if err != nil {
		return nil, err
	}
	src := importSource[*enrollmentItem]{
		noun: "enrollment",
		next: func() (int, string, *enrollmentItem, error, error) {
			rec, err := rd.Next()
			if err != nil {
				return 0, "", nil, nil, err
			}
			it := &enrollmentItem{rec: rec}
			rowErr := rec.Err
			if rowErr == nil {
				if err := gatehouse.ValidateDeviceID(rec.ID); err != nil {
					rowErr = gatehouse.Errorf(gatehouse.EInvalidID, "enrollment id: %s", gatehouse.ErrorMessage(err))
				}
			}
			// An ID that is not one is not echoed: a shifted column may
			// have put a key there.
			id := rec.ID
			if gatehouse.ValidateDeviceID(id) != nil {
				id = ""
			}
			if rowErr == nil && req.Mode != ImportDelete && req.Mode != ImportUpdate {
				// What the record would create; kept apart from the row's
				// fate, which depends on whether the enrollment exists.
				it.cand, it.candErr = s.enrollmentCandidate(scope, rec, p, s.timestamp())
			}
			return rec.Row, id, it, rowErr, nil
		},
		commit: func(ctx context.Context, b *importBatch[*enrollmentItem]) error {
			return s.commitEnrollmentImport(ctx, scope, req.Mode, p, b, req.hook)
		},
		hook: req.hook, update: s.update,
	}
	return runImport(ctx, src, emit), nil
}

// enrollmentItem is an enrollment record and, in the modes that create,
// the enrollment it would create (or why it cannot).
type enrollmentItem struct {
	rec     *EnrollmentRecord
	cand    *gatehouse.Enrollment
	candErr error
}

// enrollmentCandidate builds, sealed, the enrollment a record creates.
func (s *Service) enrollmentCandidate(scope string, rec *EnrollmentRecord, p *gatehouse.Principal, now time.Time) (*gatehouse.Enrollment, error) {
	a := rec.Attestation
	switch a.Type {
	case "":
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "attestation is required to create an enrollment: symmetric_key, x509 or token")
	case gatehouse.AttestSymmetricKey:
		if a.PrimaryKey == "" {
			return nil, gatehouse.Errorf(gatehouse.EInvalid, "primaryKey is required: an import never generates keys (it could show them only in the result file); put the device's base64 key in the file")
		}
	case gatehouse.AttestToken:
		if a.Token == "" {
			return nil, gatehouse.Errorf(gatehouse.EInvalid, "token is required: an import never generates tokens (it could show them only in the result file); put the device's bootstrap token in the file")
		}
	}
	if err := checkAttestationFields(a); err != nil {
		return nil, err
	}
	req := EnrollmentCreate{
		ID: rec.ID, Type: gatehouse.EnrollmentIndividual, Attestation: a, Enabled: rec.Enabled,
		InitialTags: rec.Tags, InitialConfig: rec.Config, Reprovision: deref(rec.Reprovision),
		PreProvision: rec.PreProvision, MaxRegistrations: deref(rec.MaxRegs), ExpiresAt: rec.ExpiresAt,
	}
	if rec.DeviceIDTemplate != nil {
		req.DeviceIDTemplate = *rec.DeviceIDTemplate
	}
	if req.PreProvision != nil && req.PreProvision.URL == "" {
		req.PreProvision = nil
	}
	if rec.Credentials != nil {
		req.Credentials = *rec.Credentials
	}
	overrideCredentials(&req.Credentials, rec)
	if rec.Allocation != nil {
		req.Allocation = *rec.Allocation
	}
	overrideAllocation(&req.Allocation, rec)
	e, _, err := s.newEnrollment(scope, req, p, now)
	// The second return is what CreateEnrollment shows once: here only a
	// generated secondary key, which nobody is shown (see above).
	return e, err
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

func overrideCredentials(c *gatehouse.CredentialPolicy, rec *EnrollmentRecord) {
	if rec.CertPolicy != nil {
		c.Certificate = *rec.CertPolicy
	}
	if rec.CertValidity != nil {
		c.Validity = *rec.CertValidity
	}
}

func overrideAllocation(a *gatehouse.Allocation, rec *EnrollmentRecord) {
	if rec.AllocPolicy != nil {
		a.Policy = *rec.AllocPolicy
	}
	if rec.Endpoints != nil {
		a.Endpoints = rec.Endpoints
	}
}

// checkAttestationFields refuses members that do not belong to the
// attestation type, and a thumbprint that is not the certificate's.
func checkAttestationFields(a gatehouse.Attestation) error {
	keys := a.PrimaryKey != "" || a.SecondaryKey != ""
	x509 := a.Certificate != "" || a.Thumbprint != ""
	token := a.Token != "" || a.MaxUses != 0 || a.ExpiresAt != nil
	var stray string
	switch a.Type {
	case gatehouse.AttestSymmetricKey:
		if x509 || token {
			stray = "certificate, thumbprint or token members"
		}
	case gatehouse.AttestX509:
		if keys || token {
			stray = "key or token members"
		}
	case gatehouse.AttestToken:
		if keys || x509 {
			stray = "key, certificate or thumbprint members"
		}
	case "":
		if keys || x509 || token {
			return gatehouse.Errorf(gatehouse.EInvalid, "the record has attestation members but no attestation type; name it: symmetric_key, x509 or token")
		}
	default:
		return gatehouse.Errorf(gatehouse.EInvalid, "attestation must be symmetric_key, x509 or token")
	}
	if stray != "" {
		return gatehouse.Errorf(gatehouse.EInvalid, "a %s attestation takes no %s", a.Type, stray)
	}
	if a.Certificate != "" && a.Thumbprint != "" {
		cert, err := parseOneCertificate(a.Certificate)
		if err != nil {
			return err
		}
		tp, err := attest.NormalizeThumbprint(a.Thumbprint)
		sum := sha256.Sum256(cert.Raw)
		if err != nil || tp != hex.EncodeToString(sum[:]) {
			return gatehouse.Errorf(gatehouse.EInvalid, "thumbprint is not the certificate's SHA-256; give one of them, or both matching")
		}
	}
	return nil
}

// commitEnrollmentImport applies the records of b not refused already, in
// one transaction, and fills in their results.
func (s *Service) commitEnrollmentImport(ctx context.Context, scope string, mode ImportMode, p *gatehouse.Principal, b *importBatch[*enrollmentItem], hook batchHook) error {
	var results []ImportResult
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		err = s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
			results = append(results[:0], b.results...)
			if err := s.applyEnrollmentImport(tx, ev, scope, mode, p, b, results); err != nil {
				return err
			}
			if hook != nil {
				return hook(tx, ev, results)
			}
			return nil
		})
		if !errors.Is(err, errImportRace) {
			break
		}
	}
	if err != nil {
		return err
	}
	copy(b.results, results)
	return nil
}

// applyEnrollmentImport runs inside the batch's transaction. results holds
// the outcomes decided before it; it sets the others.
func (s *Service) applyEnrollmentImport(tx gatehouse.Tx, ev *eventLog, scope string, mode ImportMode, p *gatehouse.Principal, b *importBatch[*enrollmentItem], results []ImportResult) error {
	now := s.timestamp()
	ids := make([]string, 0, len(b.items))
	for i, it := range b.items {
		if results[i].Code == "" {
			ids = append(ids, it.rec.ID)
		}
	}
	existing, err := tx.GetEnrollments(scope, ids)
	if err != nil {
		return err
	}
	var created, updated, deleted []string
	var creates []*gatehouse.Enrollment
	var createIdx []int
	fail := func(i int, err error) {
		results[i].Code, results[i].Message = gatehouse.ErrorCode(err), gatehouse.ErrorMessage(err)
	}
	done := func(i int, status string) { results[i].OK, results[i].Status = true, status }
	for i, it := range b.items {
		if results[i].Code != "" {
			continue
		}
		rec := it.rec
		cur := existing[rec.ID]
		if cur != nil && cur.Type != gatehouse.EnrollmentIndividual {
			fail(i, gatehouse.Errorf(gatehouse.EConflict, "%q is a group enrollment; an import changes individual enrollments only", rec.ID))
			continue
		}
		switch {
		case mode == ImportDelete:
			if cur == nil {
				done(i, ImportUnchanged)
				continue
			}
			if rec.ETag != "" && rec.ETag != cur.ETag {
				fail(i, gatehouse.Errorf(gatehouse.EPreconditionFailed, "enrollment %q has changed since the file was made (its etag is now %q)", rec.ID, cur.ETag))
				continue
			}
			if err := tx.DeleteEnrollment(scope, rec.ID); err != nil {
				if isTxError(err) {
					return err
				}
				fail(i, err)
				continue
			}
			deleted = append(deleted, rec.ID)
			done(i, ImportDeleted)
		case cur == nil && mode == ImportUpdate:
			fail(i, gatehouse.Errorf(gatehouse.ENotFound, "enrollment %q not found in scope %q; use mode upsert to create it", rec.ID, scope))
		case cur == nil:
			if it.candErr != nil {
				fail(i, it.candErr)
				continue
			}
			e := *it.cand
			e.CreatedAt, e.UpdatedAt = now, now
			creates, createIdx = append(creates, &e), append(createIdx, i)
		default:
			next, changed, err := s.mergeEnrollment(cur, rec, p, now)
			if err != nil {
				if isTxError(err) {
					return err
				}
				fail(i, err)
				continue
			}
			if !changed {
				done(i, ImportUnchanged)
				continue
			}
			if mode == ImportCreate {
				fail(i, gatehouse.Errorf(gatehouse.EConflict, "enrollment %q already exists in scope %q with other settings or secrets; use mode upsert or update to change it", rec.ID, scope))
				continue
			}
			if rec.ETag != "" && rec.ETag != cur.ETag {
				fail(i, gatehouse.Errorf(gatehouse.EPreconditionFailed, "enrollment %q has changed since the file was made (its etag is now %q)", rec.ID, cur.ETag))
				continue
			}
			if err := tx.UpdateEnrollment(next, cur.ETag); err != nil {
				if isTxError(err) {
					return err
				}
				fail(i, err)
				continue
			}
			updated = append(updated, rec.ID)
			done(i, ImportUpdated)
		}
	}
	if len(creates) > 0 {
		if err := tx.CreateEnrollments(creates); err != nil {
			if gatehouse.ErrorCode(err) == gatehouse.EConflict {
				return errImportRace // created meanwhile by another node
			}
			return err
		}
		for j, i := range createIdx {
			created = append(created, creates[j].ID)
			done(i, ImportCreated)
		}
	}
	if len(created)+len(updated)+len(deleted) > 0 {
		data := map[string]any{"mode": mode, "created": nonNilStrings(created), "updated": nonNilStrings(updated), "deleted": nonNilStrings(deleted)}
		if err := ev.append(scope, EventEnrollmentsImported, p.Actor(), "enrollments", now, data); err != nil {
			return err
		}
	}
	return nil
}

// mergeEnrollment applies a record to an existing individual enrollment:
// what the record names replaces what is stored, the rest stays (secrets
// included). It reports whether anything changed; the result is sealed.
func (s *Service) mergeEnrollment(cur *gatehouse.Enrollment, rec *EnrollmentRecord, p *gatehouse.Principal, now time.Time) (*gatehouse.Enrollment, bool, error) {
	curSecrets, err := s.EnrollmentSecrets(cur)
	if err != nil {
		return nil, false, err
	}
	secrets := *curSecrets
	e := *cur
	e.InitialTags = maps.Clone(cur.InitialTags)
	if err := s.mergeAttestation(&e, cur, curSecrets, &secrets, rec.Attestation, p, now); err != nil {
		return nil, false, err
	}

	if rec.Enabled != nil {
		e.Enabled = *rec.Enabled
	}
	if rec.DeviceIDTemplate != nil {
		e.DeviceIDTemplate = *rec.DeviceIDTemplate
	}
	if rec.ReplaceTags {
		e.InitialTags = maps.Clone(rec.Tags)
	} else {
		if e.InitialTags == nil {
			e.InitialTags = map[string]string{}
		}
		maps.Copy(e.InitialTags, rec.Tags)
		for _, k := range rec.Untag {
			delete(e.InitialTags, k)
		}
	}
	if rec.Config != nil {
		e.InitialConfig = rec.Config
	}
	if rec.Credentials != nil {
		e.Credentials = *rec.Credentials
	}
	overrideCredentials(&e.Credentials, rec)
	if rec.Allocation != nil {
		a := *rec.Allocation
		e.Allocation = a
	} else {
		e.Allocation.Endpoints = append([]gatehouse.Endpoint(nil), cur.Allocation.Endpoints...)
	}
	overrideAllocation(&e.Allocation, rec)
	if rec.Reprovision != nil {
		e.Reprovision = *rec.Reprovision
	}
	if rec.PreProvision != nil {
		e.PreProvision = rec.PreProvision
		if rec.PreProvision.URL == "" {
			e.PreProvision = nil
		}
	}
	if rec.MaxRegs != nil {
		e.MaxRegistrations = *rec.MaxRegs
	}
	if rec.ExpiresAt != nil {
		e.ExpiresAt = rec.ExpiresAt
	}
	// preparePolicy normalises webhooks in place: never cur's.
	if e.PreProvision != nil {
		w := *e.PreProvision
		e.PreProvision = &w
	}
	if e.Allocation.Webhook != nil {
		w := *e.Allocation.Webhook
		e.Allocation.Webhook = &w
	}
	if err := s.preparePolicy(&e, &secrets, cur); err != nil {
		return nil, false, err
	}
	if rec.ExpiresAt != nil && !sameTime(e.ExpiresAt, cur.ExpiresAt) && !e.ExpiresAt.After(now) {
		return nil, false, gatehouse.Errorf(gatehouse.EInvalid, "expiresAt is in the past")
	}
	if sameEnrollment(&e, cur) && sameSecrets(&secrets, curSecrets) {
		return cur, false, nil
	}
	if err := s.sealEnrollment(&e, &secrets); err != nil {
		return nil, false, err
	}
	e.UpdatedAt, e.ETag = now, newETag()
	return &e, true, nil
}

// mergeAttestation applies the attestation members a record names to e
// (a copy of cur) and secrets (a copy of cur's). A member the record
// leaves out keeps its stored value; another attestation type replaces the
// whole attestation and then needs its secret in the record.
func (s *Service) mergeAttestation(e, cur *gatehouse.Enrollment, curSecrets, secrets *EnrollmentSecrets, in gatehouse.Attestation, p *gatehouse.Principal, now time.Time) error {
	if err := checkAttestationFields(in); err != nil {
		return err
	}
	if in.Type == "" {
		return nil // the record names no attestation
	}
	old := cur.Attestation
	if in.Type != old.Type {
		switch {
		case in.Type == gatehouse.AttestSymmetricKey && in.PrimaryKey == "":
			return gatehouse.Errorf(gatehouse.EInvalid, "primaryKey is required to move an enrollment to symmetric_key: an import never generates keys")
		case in.Type == gatehouse.AttestToken && in.Token == "":
			return gatehouse.Errorf(gatehouse.EInvalid, "token is required to move an enrollment to token: an import never generates tokens")
		}
		secrets.PrimaryKey, secrets.SecondaryKey = nil, nil
		_, err := s.prepareAttestation(e, in, secrets, p, now)
		return err
	}
	switch in.Type {
	case gatehouse.AttestSymmetricKey:
		if in.PrimaryKey == "" {
			in.PrimaryKey = base64.StdEncoding.EncodeToString(curSecrets.PrimaryKey)
		}
		if in.SecondaryKey == "" {
			in.SecondaryKey = base64.StdEncoding.EncodeToString(curSecrets.SecondaryKey)
		}
		_, err := s.prepareAttestation(e, in, secrets, p, now)
		return err
	case gatehouse.AttestX509:
		if in.Certificate == "" {
			tp, err := attest.NormalizeThumbprint(in.Thumbprint)
			if err == nil && tp == old.Thumbprint {
				return nil // the stored certificate's thumbprint: no change
			}
		}
		_, err := s.prepareAttestation(e, in, secrets, p, now)
		return err
	case gatehouse.AttestToken:
		if in.Token != "" {
			sum := sha256.Sum256([]byte(in.Token))
			same := bytes.Equal(sum[:], old.TokenHash)
			if same && in.MaxUses == 0 && in.ExpiresAt == nil {
				return nil // the stored token, nothing else named
			}
			if in.MaxUses == 0 {
				in.MaxUses = old.MaxUses
			}
			if in.ExpiresAt == nil && same {
				in.ExpiresAt = old.ExpiresAt
			}
			if _, err := s.prepareAttestation(e, in, secrets, p, now); err != nil {
				return err
			}
			if same {
				e.Attestation.Uses = old.Uses // the same token keeps its count
			}
			return nil
		}
		// Only the token's limits.
		if in.MaxUses != 0 {
			if in.MaxUses < 0 || in.MaxUses > 1_000_000 {
				return gatehouse.Errorf(gatehouse.EInvalid, "maxUses must be between 1 and 1000000")
			}
			e.Attestation.MaxUses = in.MaxUses
		}
		if in.ExpiresAt != nil {
			t := in.ExpiresAt.UTC().Truncate(time.Microsecond)
			if !sameTime(&t, old.ExpiresAt) && !t.After(now) {
				return gatehouse.Errorf(gatehouse.EInvalid, "tokenExpiresAt is in the past")
			}
			e.Attestation.ExpiresAt = &t
		}
	}
	return nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// sameEnrollment compares what an import may change of two enrollments
// (their public members and the token's hash; not the etag, update time or
// sealed blob).
func sameEnrollment(a, b *gatehouse.Enrollment) bool {
	x, y := *a, *b
	x.ETag, y.ETag = "", ""
	x.UpdatedAt, y.UpdatedAt = time.Time{}, time.Time{}
	x.SealedSecrets, y.SealedSecrets = nil, nil
	if len(x.InitialTags) == 0 {
		x.InitialTags = nil
	}
	if len(y.InitialTags) == 0 {
		y.InitialTags = nil
	}
	jx, err1 := json.Marshal(&x)
	jy, err2 := json.Marshal(&y)
	return err1 == nil && err2 == nil && bytes.Equal(jx, jy) && bytes.Equal(a.Attestation.TokenHash, b.Attestation.TokenHash)
}

func sameSecrets(a, b *EnrollmentSecrets) bool {
	return bytes.Equal(a.PrimaryKey, b.PrimaryKey) && bytes.Equal(a.SecondaryKey, b.SecondaryKey) &&
		bytes.Equal(a.PreProvisionKey, b.PreProvisionKey) && bytes.Equal(a.AllocationHookKey, b.AllocationHookKey)
}
