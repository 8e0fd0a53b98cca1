package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// ProvisionCommit is what the provisioning service decided for one
// registration, after attestation, matching, webhooks and allocation.
// CommitProvision writes all of it in one transaction.
type ProvisionCommit struct {
	Scope          string
	RegistrationID string
	EnrollmentID   string
	DeviceID       string
	OperationID    string
	Dialect        string
	Force          bool // forceRegistration: re-provision even under ReprovisionNever
	ConsumeToken   bool // a bootstrap token was used: count it against maxUses
	// ProvedWith is the kind of secret the device attested with
	// (symmetric_key or token; x509 needs no record: the factory
	// certificate is the enrollment's). KeySlot names the key's slot.
	ProvedWith  gatehouse.CredentialKind
	KeySlot     string
	CSR         *x509.CertificateRequest
	CertDER     []byte // the certificate already signed for CSR (signing happens outside the transaction)
	AssignedHub string
	Tags        map[string]string // overrides of the initial tags (pre-provision webhook)
	Config      json.RawMessage   // override of the initial config
	// Enrollment, if set, is the enrollment as the attestation read it
	// (not modified). The transaction then decides with it and touches the
	// enrollment's row only at its end, with one UPDATE that counts the
	// registration if the etag (the settings) is still the copy's: on
	// PostgreSQL concurrent registrations of one enrollment then hold its
	// row lock only for their last statements and the commit, not for the
	// whole transaction. If the settings changed in between (or a limit
	// was reached), the transaction runs again reading the enrollment first.
	Enrollment *gatehouse.Enrollment
}

// ProvisionOutcome is the committed result.
type ProvisionOutcome struct {
	Device       *gatehouse.Device
	Registration *gatehouse.Registration
	Credential   *gatehouse.Credential // the issued certificate, if any
}

// errRetry asks CommitProvision to run the transaction again: a concurrent
// registration of the same ID created the device first.
var errRetry = errors.New("retry provisioning transaction")

// errStaleEnrollment asks CommitProvision to run the transaction again
// without the attestation's copy of the enrollment: its settings changed,
// or a limit it shows room under was reached since.
var errStaleEnrollment = errors.New("the enrollment changed since the attestation read it")

// CommitProvision creates or re-provisions the device, records the issued
// certificate, counts the enrollment's use, stores the registration record
// and appends the events, all in one transaction. Registering the same ID
// again never makes a second device; concurrent registrations of one ID
// (on one node or several) converge on one device.
func (s *Service) CommitProvision(ctx context.Context, c ProvisionCommit) (*ProvisionOutcome, error) {
	attested := c.Enrollment // what the device's proof was checked against
	for attempt := 0; ; attempt++ {
		out, err := s.commitProvision(ctx, c, attested)
		if errors.Is(err, errStaleEnrollment) {
			c.Enrollment = nil
			continue
		}
		if errors.Is(err, errRetry) {
			if attempt < 3 {
				continue
			}
			return nil, gatehouse.Errorf(gatehouse.EUnavailable, "the registration collided with concurrent ones; retry")
		}
		return out, err
	}
}

func (s *Service) commitProvision(ctx context.Context, c ProvisionCommit, attested *gatehouse.Enrollment) (*ProvisionOutcome, error) {
	actor := "device:" + c.RegistrationID
	out := &ProvisionOutcome{}
	var cert *x509.Certificate
	if c.CertDER != nil {
		var err error
		if cert, err = x509.ParseCertificate(c.CertDER); err != nil {
			return nil, fmt.Errorf("parse issued certificate: %w", err)
		}
	}
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		now := s.timestamp()
		// e decides the registration; locked says whether it was read
		// under its row lock. The attestation's copy is only read here.
		e, locked := c.Enrollment, false
		if e == nil || e.Scope != c.Scope || e.ID != c.EnrollmentID {
			var err error
			if e, err = lockEnrollment(tx, c.Scope, c.EnrollmentID); err != nil {
				return err
			}
			locked = true
			if attested != nil && !s.sameProof(attested, e, c) {
				// The device proved a key or token that may be gone: let
				// it attest again against what the enrollment holds now.
				return gatehouse.Errorf(gatehouse.EUnavailable, "the enrollment's credentials changed during this registration; retry")
			}
		}
		if err := checkEnrollmentUse(e, c, now, false); err != nil {
			return err
		}
		reg, err := tx.GetRegistration(c.Scope, c.RegistrationID)
		if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
			reg = &gatehouse.Registration{Scope: c.Scope, RegistrationID: c.RegistrationID, CreatedAt: now}
		} else if err != nil {
			return err
		}
		d, err := tx.GetDevice(c.Scope, c.DeviceID)
		// From here on the transaction writes, and whichever write fails
		// ends it: w lets the store send the writes together (PostgreSQL:
		// in front of the next read, or of COMMIT) rather than one round
		// trip each. Their errors may then come from a later call on tx,
		// or from Update.
		w := gatehouse.Deferred(tx, nil)
		var substatus string
		newDevice := false // counted against the enrollment's maximum
		switch {
		case gatehouse.ErrorCode(err) == gatehouse.ENotFound:
			newDevice = true
			if err := checkEnrollmentUse(e, c, now, true); err != nil {
				return err
			}
			d = &gatehouse.Device{ID: c.DeviceID, Scope: c.Scope, State: gatehouse.StateProvisioned,
				Connection: gatehouse.Connection{Status: gatehouse.Offline}, Tags: initialTags(e, c), Config: initialConfig(e, c),
				Reported: json.RawMessage("{}"), Enrollment: e.ID, CreatedAt: now, UpdatedAt: now, ETag: newETag()}
			if err := d.Validate(); err != nil {
				return err
			}
			if err := gatehouse.Deferred(tx, retryOnConflict).CreateDevice(d); err != nil {
				return err
			}
			if err := w.AddStateChange(c.Scope, d.ID, &gatehouse.StateChange{To: d.State, Actor: actor, Reason: "provisioned by enrollment " + e.ID, Time: now}); err != nil {
				return err
			}
			if err := ev.append(c.Scope, gatehouse.EventDeviceCreated, actor, gatehouse.DeviceSubject(d.ID), now, d); err != nil {
				return err
			}
			substatus = gatehouse.SubInitialAssignment
		case err != nil:
			return err
		default:
			switch d.State {
			case gatehouse.StateQuarantined:
				return gatehouse.Errorf(gatehouse.EDeviceQuarantined, "the device is quarantined; contact the operator")
			case gatehouse.StateDecommissioned:
				return gatehouse.Errorf(gatehouse.EReprovisionRefused, "the device was decommissioned; an operator must delete its record before it can enrol again")
			case gatehouse.StateInactive:
				return gatehouse.Errorf(gatehouse.EDeviceDisabled, "the device is disabled")
			}
			prev := d.ETag
			d = d.Clone()
			policy := e.Reprovision
			switch {
			case reg.Status == gatehouse.RegAssigned && reg.EnrollmentID == e.ID && reg.DeviceID == d.ID && policy == gatehouse.ReprovisionNever && !c.Force:
				// Same device, same enrollment, already assigned: answer the
				// assignment again (idempotent), move nothing.
				substatus = reg.Substatus
				c.AssignedHub = reg.AssignedHub
			case policy == gatehouse.ReprovisionNever && !c.Force:
				return gatehouse.Errorf(gatehouse.EReprovisionRefused, "this enrollment does not re-provision devices; an operator must act")
			case policy == gatehouse.ReprovisionReset:
				d.Tags, d.Config = initialTags(e, c), initialConfig(e, c)
				substatus = gatehouse.SubDeviceDataReset
			default:
				substatus = gatehouse.SubDeviceDataMigrated
			}
			if d.Enrollment != e.ID || substatus == gatehouse.SubDeviceDataReset {
				d.Enrollment = e.ID
				d.UpdatedAt = now
				d.ETag = newETag()
				if err := w.UpdateDevice(d, prev); err != nil {
					return err
				}
			}
		}
		created := substatus == gatehouse.SubInitialAssignment && d.CreatedAt.Equal(now)
		if err := s.recordSecretCredential(w, ev, c, d, actor, now, created); err != nil {
			return err
		}
		if cert != nil {
			sum := sha256.Sum256(c.CertDER)
			nb, na := cert.NotBefore.UTC(), cert.NotAfter.UTC()
			cred := &gatehouse.Credential{ID: SerialHex(cert.SerialNumber), Scope: c.Scope, DeviceID: d.ID, Kind: gatehouse.CredentialX509,
				Status: gatehouse.CredentialActive, Serial: SerialHex(cert.SerialNumber), Thumbprint: hex.EncodeToString(sum[:]),
				NotBefore: &nb, NotAfter: &na, CreatedAt: now, CertDER: c.CertDER}
			// A device created in this transaction has no certificate to retire.
			renewed := false
			if !created {
				sc, err := tx.GetScope(c.Scope)
				if err != nil {
					return notFoundScope(err, c.Scope)
				}
				if renewed, err = s.retireCertificates(w, c.Scope, d.ID, now, time.Duration(sc.Policy.WithDefaults().RenewalOverlap)); err != nil {
					return err
				}
			}
			if err := w.CreateCredential(cred); err != nil {
				return err
			}
			typ := gatehouse.EventCredentialIssued
			if renewed {
				typ = gatehouse.EventCredentialRenewed
			}
			if err := ev.append(c.Scope, typ, actor, gatehouse.DeviceSubject(d.ID), now, map[string]any{"deviceId": d.ID, "kind": cred.Kind,
				"serial": cred.Serial, "thumbprint": cred.Thumbprint, "notBefore": nb, "notAfter": na}); err != nil {
				return err
			}
			out.Credential = cred
		}
		reg.EnrollmentID, reg.DeviceID, reg.OperationID = e.ID, d.ID, c.OperationID
		reg.Status, reg.Substatus, reg.AssignedHub = gatehouse.RegAssigned, substatus, c.AssignedHub
		reg.ErrorCode, reg.ErrorMessage = "", ""
		reg.Attempts++
		reg.UpdatedAt, reg.ETag = now, newETag()
		if err := w.PutRegistration(reg); err != nil {
			return err
		}
		// Count the registration on the enrollment, if its settings are
		// still those that decided it and it has room.
		if err := countEnrollmentUse(tx, e, locked, c, newDevice); err != nil {
			return err
		}
		out.Device, out.Registration = d, reg
		return ev.append(c.Scope, gatehouse.EventDeviceProvisioned, actor, gatehouse.DeviceSubject(d.ID), now, map[string]any{
			"registrationId": c.RegistrationID, "enrollmentId": e.ID, "substatus": substatus, "assignedHub": c.AssignedHub, "dialect": c.Dialect})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// lockEnrollment reads the enrollment in tx, under its row lock where the
// store has row locks.
func lockEnrollment(tx gatehouse.Tx, scope, id string) (*gatehouse.Enrollment, error) {
	e, err := tx.GetEnrollment(scope, id)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return nil, gatehouse.Errorf(gatehouse.EEnrollmentNotFound, "no enrollment matches this device")
	}
	return e, err
}

// checkEnrollmentUse checks that e admits this registration: enabled, not
// expired, a token with uses left and, for a new device (newDevice), room
// under the enrollment's maximum. Checked with the attestation's copy first
// (to fail early), and again with the locked row (it may have been disabled,
// or filled, since).
func checkEnrollmentUse(e *gatehouse.Enrollment, c ProvisionCommit, now time.Time, newDevice bool) error {
	if err := CheckEnrollment(e, now); err != nil {
		return err
	}
	if c.ConsumeToken && e.Attestation.MaxUses > 0 && e.Attestation.Uses >= e.Attestation.MaxUses {
		return gatehouse.Errorf(gatehouse.EAttestationFailed, "attestation failed")
	}
	if newDevice && e.MaxRegistrations > 0 && e.Registrations >= e.MaxRegistrations {
		return gatehouse.Errorf(gatehouse.EQuotaExceeded, "the enrollment admits no more devices")
	}
	return nil
}

// sameProof reports whether cur, the enrollment read again under its lock,
// still takes the proof that c's device gave against attested, the copy the
// attestation checked it with: the same key in the slot it used, the same
// token (and its expiry), or the same CA certificate, still verified.
// Anything else the enrollment holds (the other key slot, a verification
// code, its settings) may have changed.
func (s *Service) sameProof(attested, cur *gatehouse.Enrollment, c ProvisionCommit) bool {
	a, b := attested.Attestation, cur.Attestation
	if attested.Scope != cur.Scope || attested.ID != cur.ID || a.Type != b.Type {
		return false
	}
	switch c.ProvedWith {
	case gatehouse.CredentialSymmetricKey:
		if bytes.Equal(attested.SealedSecrets, cur.SealedSecrets) {
			return true
		}
		x, err := s.EnrollmentSecrets(attested)
		if err != nil {
			return false
		}
		defer x.wipe()
		y, err := s.EnrollmentSecrets(cur)
		if err != nil {
			return false
		}
		defer y.wipe()
		if c.KeySlot == "secondary" {
			return bytes.Equal(x.SecondaryKey, y.SecondaryKey)
		}
		return bytes.Equal(x.PrimaryKey, y.PrimaryKey)
	case gatehouse.CredentialToken:
		return bytes.Equal(a.TokenHash, b.TokenHash) && sameTime(a.ExpiresAt, b.ExpiresAt)
	}
	// X.509: the chain was verified against the enrollment's certificate.
	return a.Certificate == b.Certificate && a.Thumbprint == b.Thumbprint && a.Verified == b.Verified
}

// countEnrollmentUse counts the registration c on e, the copy of the
// enrollment that decided it (locked: read in tx, under its lock). It is
// the transaction's last write to the enrollment, and the only one: on
// PostgreSQL, concurrent registrations of one enrollment wait for each
// other from here to their commit only. The count is deferred (it goes
// with the transaction's other writes), so its refusal ends the
// transaction: stale settings, or a limit reached since e was read, run it
// again reading the enrollment under its lock first, and that run refuses
// with the limit's own error, as checkEnrollmentUse does.
func countEnrollmentUse(tx gatehouse.Tx, e *gatehouse.Enrollment, locked bool, c ProvisionCommit, newDevice bool) error {
	u := gatehouse.EnrollmentUse{Scope: e.Scope, ID: e.ID, ETag: e.ETag}
	if newDevice {
		// Only a new device is held to the maximum: a device already
		// counted registers again even after an operator lowered it.
		u.Registrations, u.MaxRegistrations = 1, e.MaxRegistrations
	}
	if c.ConsumeToken {
		u.Uses, u.MaxUses = 1, e.Attestation.MaxUses
	}
	return gatehouse.Deferred(tx, func(err error) error {
		switch gatehouse.ErrorCode(err) {
		case gatehouse.ENotFound:
			return gatehouse.Errorf(gatehouse.EEnrollmentNotFound, "no enrollment matches this device")
		case gatehouse.EPreconditionFailed, gatehouse.EQuotaExceeded:
			if locked {
				return err // cannot happen: the row was read, and checked, under its lock
			}
			return errStaleEnrollment
		}
		return err
	}).CountEnrollmentUse(u)
}

// retryOnConflict maps the conflict of a device created by a concurrent
// registration of the same ID to errRetry: the transaction runs again and
// re-provisions it.
func retryOnConflict(err error) error {
	if gatehouse.ErrorCode(err) == gatehouse.EConflict {
		return errRetry
	}
	return err
}

func initialTags(e *gatehouse.Enrollment, c ProvisionCommit) map[string]string {
	tags := maps.Clone(e.InitialTags)
	if tags == nil {
		tags = map[string]string{}
	}
	maps.Copy(tags, c.Tags)
	return tags
}

func initialConfig(e *gatehouse.Enrollment, c ProvisionCommit) json.RawMessage {
	if len(c.Config) > 0 {
		return gatehouse.CompactJSON(c.Config)
	}
	return gatehouse.CompactJSON(e.InitialConfig)
}

// CheckEnrollment refuses a disabled or expired enrollment, or a token
// enrollment past its expiry.
func CheckEnrollment(e *gatehouse.Enrollment, now time.Time) error {
	switch {
	case !e.Enabled:
		return gatehouse.Errorf(gatehouse.EEnrollmentDisabled, "the enrollment is disabled")
	case e.ExpiresAt != nil && !now.Before(*e.ExpiresAt):
		return gatehouse.Errorf(gatehouse.EEnrollmentExpired, "the enrollment has expired")
	case e.Attestation.Type == gatehouse.AttestToken && e.Attestation.ExpiresAt != nil && !now.Before(*e.Attestation.ExpiresAt):
		return gatehouse.Errorf(gatehouse.EAttestationFailed, "attestation failed")
	}
	return nil
}

// RecordRegistrationFailure stores a failed registration's error for an
// attested device (unattested garbage leaves no record, so it cannot fill
// the database).
func (s *Service) RecordRegistrationFailure(ctx context.Context, scope, registrationID, enrollmentID, operationID string, cause error) error {
	return s.store.Update(ctx, func(tx gatehouse.Tx) error {
		now := s.timestamp()
		reg, err := tx.GetRegistration(scope, registrationID)
		if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
			reg = &gatehouse.Registration{Scope: scope, RegistrationID: registrationID, CreatedAt: now}
		} else if err != nil {
			return err
		}
		reg.EnrollmentID, reg.OperationID = enrollmentID, operationID
		reg.Status, reg.ErrorCode, reg.ErrorMessage = gatehouse.RegFailed, gatehouse.ErrorCode(cause), gatehouse.ErrorMessage(cause)
		if reg.ErrorCode == gatehouse.EEnrollmentDisabled {
			reg.Status = gatehouse.RegDisabled
		}
		reg.Attempts++
		reg.UpdatedAt, reg.ETag = now, newETag()
		// Deferred: on PostgreSQL the record goes with COMMIT.
		return gatehouse.Deferred(tx, nil).PutRegistration(reg)
	})
}

// Registration returns a registration record (for operation polling).
func (s *Service) Registration(ctx context.Context, scope, registrationID string) (*gatehouse.Registration, error) {
	return s.store.GetRegistration(ctx, scope, registrationID)
}

// RecordAuthFailure appends a device.auth_failed event: repeated failed
// attestations locked a registration ID out.
func (s *Service) RecordAuthFailure(ctx context.Context, scope, registrationID, dialect, source string, lockedFor time.Duration) error {
	if _, err := s.store.GetScope(ctx, scope); err != nil {
		return nil // no such scope: nothing to audit into
	}
	return s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		return ev.append(scope, gatehouse.EventDeviceAuthFailed, "device:"+registrationID, gatehouse.DeviceSubject(registrationID), s.timestamp(),
			map[string]any{"registrationId": registrationID, "dialect": dialect, "source": source, "lockedForSeconds": int(lockedFor.Seconds())})
	})
}

// GetRegistration returns a registration record to an operator.
func (s *Service) GetRegistration(ctx context.Context, p *gatehouse.Principal, scope, registrationID string) (*gatehouse.Registration, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	if err := gatehouse.ValidateDeviceID(registrationID); err != nil {
		return nil, err
	}
	r, err := s.store.GetRegistration(ctx, scope, registrationID)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "no registration %q in scope %q", registrationID, scope)
	}
	return r, err
}

// SecretCredentialID names a device's symmetric-key or token credential
// record. It includes the device's creation time, so a device deleted and
// enrolled again starts with a fresh record rather than its revoked one.
func SecretCredentialID(kind gatehouse.CredentialKind, d *gatehouse.Device) string {
	sum := sha256.Sum256([]byte(d.ID + "\x00" + d.CreatedAt.UTC().Format(time.RFC3339Nano)))
	prefix := "key-"
	if kind == gatehouse.CredentialToken {
		prefix = "tok-"
	}
	return prefix + hex.EncodeToString(sum[:12])
}

// recordSecretCredential keeps a credential record for the symmetric key
// or bootstrap token a device provisioned with, so that its credential list
// is complete and an operator can revoke it (a revoked key refuses the
// device at its next registration or connection).
func (s *Service) recordSecretCredential(tx gatehouse.Tx, ev *eventLog, c ProvisionCommit, d *gatehouse.Device, actor string, now time.Time, newDevice bool) error {
	if c.ProvedWith != gatehouse.CredentialSymmetricKey && c.ProvedWith != gatehouse.CredentialToken {
		return nil
	}
	id := SecretCredentialID(c.ProvedWith, d)
	// A device created in this transaction has no record yet (the ID
	// includes its creation time): skip the read.
	var cur *gatehouse.Credential
	var err error = gatehouse.Errorf(gatehouse.ENotFound, "new device")
	if !newDevice {
		cur, err = tx.GetCredential(c.Scope, id)
	}
	switch {
	case err == nil && cur.Status == gatehouse.CredentialRevoked:
		return gatehouse.Errorf(gatehouse.EAttestationFailed, "attestation failed")
	case err == nil:
		if cur.Slot == c.KeySlot {
			return nil
		}
		cur.Slot = c.KeySlot
		return tx.UpdateCredential(cur)
	case gatehouse.ErrorCode(err) != gatehouse.ENotFound:
		return err
	}
	cred := &gatehouse.Credential{ID: id, Scope: c.Scope, DeviceID: d.ID, Kind: c.ProvedWith, Status: gatehouse.CredentialActive,
		Slot: c.KeySlot, CreatedAt: now}
	if err := tx.CreateCredential(cred); err != nil {
		return err
	}
	return ev.append(c.Scope, gatehouse.EventCredentialIssued, actor, gatehouse.DeviceSubject(d.ID), now,
		map[string]any{"deviceId": d.ID, "kind": cred.Kind, "id": id, "enrollmentId": c.EnrollmentID})
}

// SymmetricKeyUsable reports whether a device's symmetric-key credential
// (if it has a record) is still active: protocol front ends check it
// before accepting a SAS token signed with the device's key.
func (s *Service) SymmetricKeyUsable(ctx context.Context, d *gatehouse.Device) error {
	c, err := s.store.GetCredential(ctx, d.Scope, SecretCredentialID(gatehouse.CredentialSymmetricKey, d))
	switch {
	case gatehouse.ErrorCode(err) == gatehouse.ENotFound:
		return nil
	case err != nil:
		return err
	case c.Status == gatehouse.CredentialRevoked:
		return gatehouse.Errorf(gatehouse.EUnauthenticated, "the device's key was revoked")
	}
	return nil
}
