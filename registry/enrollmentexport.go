package registry

import (
	"context"
	"strconv"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// EnrollmentExportQuery selects the enrollments of an export.
type EnrollmentExportQuery struct {
	Type        gatehouse.EnrollmentType  // "" for both
	Attestation gatehouse.AttestationType // "" for all
}

// ExportEnrollments calls fn with every enrollment of scope that q
// selects, a page at a time in ID order, without any secret: no keys, no
// token or its hash, no webhook secret, no sealed blob (what a listing
// shows, minus the transient verification code). Each page is one
// consistent read.
func (s *Service) ExportEnrollments(ctx context.Context, p *gatehouse.Principal, scope string, q EnrollmentExportQuery, fn func([]*gatehouse.Enrollment) error) error {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return err
	}
	switch q.Type {
	case "", gatehouse.EnrollmentIndividual, gatehouse.EnrollmentGroup:
	default:
		return gatehouse.Errorf(gatehouse.EInvalid, "type must be individual or group")
	}
	switch q.Attestation {
	case "", gatehouse.AttestSymmetricKey, gatehouse.AttestX509, gatehouse.AttestToken:
	default:
		return gatehouse.Errorf(gatehouse.EInvalid, "attestation must be symmetric_key, x509 or token")
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return err
	}
	after := ""
	for {
		items, err := s.store.ListEnrollments(ctx, gatehouse.EnrollmentFilter{Scope: scope, Type: q.Type, Attestation: q.Attestation, After: after, Limit: ExportPageSize})
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return nil
		}
		for i, e := range items {
			items[i] = publicEnrollment(e)
		}
		if err := fn(items); err != nil {
			return err
		}
		if len(items) < ExportPageSize {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		after = items[len(items)-1].ID
	}
}

// publicEnrollment is e without anything secret. The store keeps secrets
// apart already; this holds whatever a future member might carry.
func publicEnrollment(e *gatehouse.Enrollment) *gatehouse.Enrollment {
	out := *e
	a := &out.Attestation
	a.PrimaryKey, a.SecondaryKey, a.Token, a.TokenHash, a.VerificationCode = "", "", "", nil, ""
	out.SealedSecrets = nil
	if out.PreProvision != nil {
		w := *out.PreProvision
		w.Secret = ""
		out.PreProvision = &w
	}
	if out.Allocation.Webhook != nil {
		w := *out.Allocation.Webhook
		w.Secret = ""
		out.Allocation.Webhook = &w
	}
	return &out
}

// EnrollmentCSVColumns is the header of an enrollment CSV export, before
// its tags.<key> columns: the columns an import reads, without the secret
// ones (primaryKey, secondaryKey, token), plus the read-only type,
// tokenUses and registrations.
var EnrollmentCSVColumns = []string{
	colID, colETag, colType, colAttestation, colEnabled, colDeviceID, colCertificate, colThumbprint,
	colTokenMaxUses, colTokenUses, colTokenExpiresAt, colAllocation, colEndpoints, colCertificatePolicy,
	colCertificateValidity, colReprovision, colMaxRegistrations, colRegistrations, colExpiresAt, colConfig,
}

// EnrollmentCSVRow fills row (len(EnrollmentCSVColumns)+len(tagKeys)) with
// e's cells. e must be a public enrollment (as ExportEnrollments gives).
func EnrollmentCSVRow(row []string, e *gatehouse.Enrollment, tagKeys []string) {
	a := e.Attestation
	optInt := func(n int) string {
		if n == 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	optTime := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	validity := ""
	if e.Credentials.Validity != 0 {
		validity = e.Credentials.Validity.String()
	}
	tokenUses := ""
	if a.Type == gatehouse.AttestToken {
		tokenUses = strconv.Itoa(a.Uses)
	}
	copy(row, []string{
		e.ID, e.ETag, string(e.Type), string(a.Type), strconv.FormatBool(e.Enabled), e.DeviceIDTemplate, a.Certificate, a.Thumbprint,
		optInt(a.MaxUses), tokenUses, optTime(a.ExpiresAt), string(e.Allocation.Policy), FormatEndpoints(e.Allocation.Endpoints),
		string(e.Credentials.Certificate), validity, string(e.Reprovision), optInt(e.MaxRegistrations), strconv.Itoa(e.Registrations),
		optTime(e.ExpiresAt), string(e.InitialConfig),
	})
	n := len(EnrollmentCSVColumns)
	for i, k := range tagKeys {
		row[n+i] = e.InitialTags[k]
	}
}
