package registry

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
)

// CRL timing: a CRL is valid for crlValidity and remade once half of that
// has passed, and at once after every revocation.
const crlValidity = 24 * time.Hour

// IssuedCertificate is the answer to a certificate request.
type IssuedCertificate struct {
	Serial      string                `json:"serial"`
	Certificate string                `json:"certificate"` // PEM, the device certificate
	Chain       string                `json:"chain"`       // PEM, issuing CA through the root
	NotBefore   time.Time             `json:"notBefore"`
	NotAfter    time.Time             `json:"notAfter"`
	Credential  *gatehouse.Credential `json:"credential"`
}

// SerialHex is how Gatehouse writes a certificate serial: lowercase hex
// without leading zeros.
func SerialHex(n *big.Int) string { return n.Text(16) }

// normalizeSerial accepts a serial as openssl prints it (upper case, colons,
// leading zeros) and returns SerialHex form.
func normalizeSerial(s string) (string, error) {
	s = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.Sign() <= 0 || len(s) > 64 {
		return "", gatehouse.Errorf(gatehouse.EInvalid, "serial %q is not a hexadecimal certificate serial number", truncateString(s, 70))
	}
	return SerialHex(n), nil
}

func truncateString(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// IssueCertificate issues an operational certificate to a device from its
// CSR. If the device already holds active certificates this is a renewal:
// they stay valid for the scope's overlap window, then count as superseded.
func (s *Service) IssueCertificate(ctx context.Context, p *gatehouse.Principal, scope, deviceID string, csrData []byte) (*IssuedCertificate, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return nil, err
	}
	if err := gatehouse.ValidateDeviceID(deviceID); err != nil {
		return nil, err
	}
	csr, err := ca.ParseCSR(csrData)
	if err != nil {
		return nil, err
	}
	return s.issueCertificate(ctx, p.Actor(), scope, deviceID, csr)
}

// issueCertificate is the one issuance path (the admin API, and later the
// provisioning dialects, come through here).
func (s *Service) issueCertificate(ctx context.Context, actor, scope, deviceID string, csr *x509.CertificateRequest) (*IssuedCertificate, error) {
	sc, err := s.scope(ctx, scope)
	if err != nil {
		return nil, err
	}
	auth, err := s.authority(ctx, scope)
	if err != nil {
		return nil, err
	}
	policy := sc.Policy.WithDefaults()
	now := s.timestamp()
	der, err := auth.IssueDeviceCertificate(csr, scope, deviceID, time.Duration(policy.CertValidity), now)
	if err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse issued certificate: %w", err)
	}
	sum := sha256.Sum256(der)
	nb, na := cert.NotBefore.UTC(), cert.NotAfter.UTC()
	cred := &gatehouse.Credential{
		ID: SerialHex(cert.SerialNumber), Scope: scope, DeviceID: deviceID, Kind: gatehouse.CredentialX509,
		Status: gatehouse.CredentialActive, Serial: SerialHex(cert.SerialNumber), Thumbprint: hex.EncodeToString(sum[:]),
		NotBefore: &nb, NotAfter: &na, CreatedAt: now, CertDER: der,
	}
	err = s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		d, err := tx.GetDevice(scope, deviceID)
		if err != nil {
			return deviceNotFound(err, scope, deviceID)
		}
		if d.State == gatehouse.StateDecommissioned || d.State == gatehouse.StateQuarantined {
			return gatehouse.Errorf(gatehouse.ECredentialDenied, "device %q is %s; no certificate is issued to it", deviceID, d.State)
		}
		renewed, err := s.retireCertificates(tx, scope, deviceID, now, time.Duration(policy.RenewalOverlap))
		if err != nil {
			return err
		}
		if err := tx.CreateCredential(cred); err != nil {
			return err
		}
		typ := gatehouse.EventCredentialIssued
		if renewed {
			typ = gatehouse.EventCredentialRenewed
		}
		return ev.append(scope, typ, actor, gatehouse.DeviceSubject(deviceID), now, map[string]any{
			"deviceId": deviceID, "kind": cred.Kind, "serial": cred.Serial, "thumbprint": cred.Thumbprint,
			"notBefore": nb, "notAfter": na})
	})
	if err != nil {
		return nil, err
	}
	return &IssuedCertificate{Serial: cred.Serial, Certificate: string(pemCert(der)), Chain: string(auth.ChainPEM()),
		NotBefore: nb, NotAfter: na, Credential: cred}, nil
}

// retireCertificates starts the overlap window of a device's active
// certificates (a renewal) and reports whether there were any.
func (s *Service) retireCertificates(tx gatehouse.Tx, scope, deviceID string, now time.Time, overlap time.Duration) (bool, error) {
	creds, err := tx.DeviceCredentials(scope, deviceID)
	if err != nil {
		return false, err
	}
	renewed := false
	for _, c := range creds {
		if c.Kind != gatehouse.CredentialX509 || c.Status != gatehouse.CredentialActive {
			continue
		}
		switch st := c.EffectiveStatus(now); {
		case st != gatehouse.CredentialActive:
			c.Status = st // write down what time already decided
		case c.RetireAt == nil:
			renewed = true
			at := now.Add(overlap)
			c.RetireAt = &at
			if overlap <= 0 {
				c.Status = gatehouse.CredentialSuperseded
			}
		default:
			renewed = true
			continue
		}
		if err := tx.UpdateCredential(c); err != nil {
			return false, err
		}
	}
	return renewed, nil
}

// RevokeCertificate revokes one certificate by serial. reason is an RFC
// 5280 reason name (default unspecified). The CRL is remade at once.
func (s *Service) RevokeCertificate(ctx context.Context, p *gatehouse.Principal, scope, serial, reason string) (*gatehouse.Credential, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return nil, err
	}
	id, err := normalizeSerial(serial)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "unspecified"
	}
	if _, ok := gatehouse.RevocationReasons[reason]; !ok {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "revocation reason %q is not an RFC 5280 reason; use e.g. keyCompromise, superseded, cessationOfOperation, unspecified", truncateString(reason, 40))
	}
	now := s.timestamp()
	var out *gatehouse.Credential
	err = s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		c, err := tx.GetCredential(scope, id)
		if gatehouse.ErrorCode(err) == gatehouse.ENotFound || err == nil && c.Kind != gatehouse.CredentialX509 {
			return gatehouse.Errorf(gatehouse.ENotFound, "no certificate with serial %s in scope %q", id, scope)
		} else if err != nil {
			return err
		}
		if c.Status == gatehouse.CredentialRevoked {
			return gatehouse.Errorf(gatehouse.EAlreadyRevoked, "certificate %s was already revoked at %s (%s)", id, c.RevokedAt.Format(time.RFC3339), c.RevocationReason)
		}
		if err := s.revoke(tx, ev, c, reason, p.Actor(), now); err != nil {
			return err
		}
		out = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.refreshCRL(ctx, scope); err != nil {
		s.log.Error("refresh CRL after revocation", "scope", scope, "serial", id, "err", err)
	}
	return out, nil
}

// RevokeCredential revokes one credential of a device, whatever its kind:
// a certificate (it goes on the CRL at once), the device's symmetric key
// (SAS tokens and DTLS-PSK sessions signed with it are refused from now on,
// and live sessions that used it are closed) or its bootstrap token.
// reason is an RFC 5280 reason name (default unspecified).
func (s *Service) RevokeCredential(ctx context.Context, p *gatehouse.Principal, scope, deviceID, credentialID, reason string) (*gatehouse.Credential, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return nil, err
	}
	if err := gatehouse.ValidateDeviceID(deviceID); err != nil {
		return nil, err
	}
	if credentialID == "" || len(credentialID) > 128 {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "credential ID must be 1 to 128 characters; list them with GET /v1/scopes/%s/devices/%s/credentials", scope, deviceID)
	}
	if reason == "" {
		reason = "unspecified"
	}
	if _, ok := gatehouse.RevocationReasons[reason]; !ok {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "revocation reason %q is not an RFC 5280 reason; use e.g. keyCompromise, superseded, cessationOfOperation, unspecified", truncateString(reason, 40))
	}
	// Certificates are named by serial: accept one in any case or with colons.
	id := credentialID
	if n, err := normalizeSerial(credentialID); err == nil {
		id = n
	}
	now := s.timestamp()
	var out *gatehouse.Credential
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		c, err := tx.GetCredential(scope, id)
		if gatehouse.ErrorCode(err) == gatehouse.ENotFound && id != credentialID {
			c, err = tx.GetCredential(scope, credentialID)
		}
		if gatehouse.ErrorCode(err) == gatehouse.ENotFound || err == nil && c.DeviceID != deviceID {
			return gatehouse.Errorf(gatehouse.ENotFound, "device %q in scope %q has no credential %q", deviceID, scope, truncateString(credentialID, 128))
		} else if err != nil {
			return err
		}
		if c.Status == gatehouse.CredentialRevoked {
			return gatehouse.Errorf(gatehouse.EAlreadyRevoked, "credential %s was already revoked at %s (%s)", c.ID, c.RevokedAt.Format(time.RFC3339), c.RevocationReason)
		}
		if err := s.revoke(tx, ev, c, reason, p.Actor(), now); err != nil {
			return err
		}
		out = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out.Kind == gatehouse.CredentialX509 {
		if err := s.refreshCRL(ctx, scope); err != nil {
			s.log.Error("refresh CRL after revocation", "scope", scope, "serial", out.ID, "err", err)
		}
	}
	return out, nil
}

func (s *Service) revoke(tx gatehouse.Tx, ev *eventLog, c *gatehouse.Credential, reason, actor string, now time.Time) error {
	c.Status = gatehouse.CredentialRevoked
	c.RevokedAt = &now
	c.RevocationReason = reason
	if err := tx.UpdateCredential(c); err != nil {
		return err
	}
	return ev.append(c.Scope, gatehouse.EventCredentialRevoked, actor, gatehouse.DeviceSubject(c.DeviceID), now,
		map[string]any{"deviceId": c.DeviceID, "kind": c.Kind, "id": c.ID, "serial": c.Serial, "reason": reason})
}

// revokeDevice revokes every credential of a device that is not revoked
// already (decommission and delete do this) and reports whether any
// certificate was among them.
func (s *Service) revokeDevice(tx gatehouse.Tx, ev *eventLog, scope, deviceID, actor string, now time.Time) (bool, error) {
	creds, err := tx.DeviceCredentials(scope, deviceID)
	if err != nil {
		return false, err
	}
	certs := false
	for _, c := range creds {
		if c.Status == gatehouse.CredentialRevoked || c.EffectiveStatus(now) == gatehouse.CredentialExpired {
			continue
		}
		if err := s.revoke(tx, ev, c, "cessationOfOperation", actor, now); err != nil {
			return false, err
		}
		certs = certs || c.Kind == gatehouse.CredentialX509
	}
	return certs, nil
}

// CredentialQuery selects credentials of a scope.
type CredentialQuery struct {
	DeviceID       string
	Kinds          []gatehouse.CredentialKind
	Statuses       []gatehouse.CredentialStatus
	ExpiringBefore *time.Time
	Cursor         string
	Limit          int
}

// CredentialPage is one page of credentials.
type CredentialPage struct {
	Items      []*gatehouse.Credential `json:"items"`
	NextCursor string                  `json:"nextCursor,omitempty"`
}

// ListCredentials lists a scope's credentials (never their secrets), with
// each status as of now.
func (s *Service) ListCredentials(ctx context.Context, p *gatehouse.Principal, scope string, q CredentialQuery) (*CredentialPage, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	if q.DeviceID != "" {
		if err := gatehouse.ValidateDeviceID(q.DeviceID); err != nil {
			return nil, err
		}
	}
	after, err := decodeCredentialCursor(q.Cursor)
	if err != nil {
		return nil, err
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultPageSize
	case q.Limit < 0 || q.Limit > MaxPageSize:
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "limit must be between 1 and %d", MaxPageSize)
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	now := s.timestamp()
	// The stored status of a credential past its overlap window or its
	// notAfter may still read active; filter on the effective status.
	storeStatuses := q.Statuses
	if slices.Contains(q.Statuses, gatehouse.CredentialSuperseded) || slices.Contains(q.Statuses, gatehouse.CredentialExpired) {
		storeStatuses = append(slices.Clone(q.Statuses), gatehouse.CredentialActive)
	}
	page := &CredentialPage{Items: []*gatehouse.Credential{}}
	for len(page.Items) <= q.Limit {
		batch, err := s.store.ListCredentials(ctx, gatehouse.CredentialFilter{Scope: scope, DeviceID: q.DeviceID, Kinds: q.Kinds,
			Statuses: storeStatuses, ExpiringBefore: q.ExpiringBefore, After: after, Limit: q.Limit + 1})
		if err != nil {
			return nil, err
		}
		for _, c := range batch {
			c.Status = c.EffectiveStatus(now)
			c.Secret = nil
			if len(q.Statuses) == 0 || slices.Contains(q.Statuses, c.Status) {
				page.Items = append(page.Items, c)
			}
		}
		if len(batch) <= q.Limit {
			break
		}
		after = batch[len(batch)-1].ID
	}
	if len(page.Items) > q.Limit {
		page.Items = page.Items[:q.Limit]
		page.NextCursor = encodeCredentialCursor(page.Items[q.Limit-1].ID)
	}
	return page, nil
}

// DeviceCredentials lists one device's credentials.
func (s *Service) DeviceCredentials(ctx context.Context, p *gatehouse.Principal, scope, deviceID string) ([]*gatehouse.Credential, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	if err := gatehouse.ValidateDeviceID(deviceID); err != nil {
		return nil, err
	}
	if _, err := s.store.GetDevice(ctx, scope, deviceID); err != nil {
		return nil, deviceNotFound(err, scope, deviceID)
	}
	page, err := s.ListCredentials(ctx, p, scope, CredentialQuery{DeviceID: deviceID, Limit: MaxPageSize})
	if err != nil {
		return nil, err
	}
	return page.Items, nil
}

func encodeCredentialCursor(id string) string {
	return gatehouse.EncodeCursor(strings.ReplaceAll(id, "/", ":"))
}

func decodeCredentialCursor(c string) (string, error) {
	id, err := gatehouse.DecodeCursor(c)
	return strings.ReplaceAll(id, ":", "/"), err
}

// CRL returns the scope's current CRL, making one if there is none or the
// stored one is due. It needs no authorisation: CRLs are public.
func (s *Service) CRL(ctx context.Context, scope string) (*gatehouse.CRL, error) {
	if err := gatehouse.ValidateScopeID(scope); err != nil {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "scope %q not found", scope)
	}
	crl, err := s.store.GetCRL(ctx, scope)
	if err == nil && !crlDue(crl, s.timestamp()) {
		return crl, nil
	}
	if err != nil && gatehouse.ErrorCode(err) != gatehouse.ENotFound {
		return nil, err
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	if err := s.refreshCRL(ctx, scope); err != nil {
		return nil, err
	}
	return s.store.GetCRL(ctx, scope)
}

func crlDue(c *gatehouse.CRL, now time.Time) bool {
	return !now.Before(c.ThisUpdate.Add(c.NextUpdate.Sub(c.ThisUpdate) / 2))
}

// refreshCRL makes and stores a new CRL for scope. The revoked list is read
// after the CRL row is locked, so of two concurrent refreshes the later
// (higher-numbered) CRL never misses a revocation the earlier one saw.
func (s *Service) refreshCRL(ctx context.Context, scope string) error {
	auth, err := s.authority(ctx, scope)
	if err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx gatehouse.Tx) error {
		number := int64(1)
		if cur, err := tx.GetCRL(scope); err == nil {
			number = cur.Number + 1
		} else if gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			return err
		}
		now := s.timestamp()
		var entries []ca.RevokedCertificate
		after := ""
		for {
			batch, err := s.store.ListCredentials(ctx, gatehouse.CredentialFilter{Scope: scope, Kinds: []gatehouse.CredentialKind{gatehouse.CredentialX509},
				Statuses: []gatehouse.CredentialStatus{gatehouse.CredentialRevoked}, After: after, Limit: 1000})
			if err != nil {
				return err
			}
			for _, c := range batch {
				if c.NotAfter != nil && c.NotAfter.Before(now) {
					continue // expired: no longer needs listing
				}
				n, ok := new(big.Int).SetString(c.Serial, 16)
				if !ok || c.RevokedAt == nil {
					continue
				}
				entries = append(entries, ca.RevokedCertificate{Serial: n, RevokedAt: *c.RevokedAt, Reason: gatehouse.RevocationReasons[c.RevocationReason]})
			}
			if len(batch) < 1000 {
				break
			}
			after = batch[len(batch)-1].ID
		}
		der, err := auth.CreateCRL(entries, number, now, now.Add(crlValidity))
		if err != nil {
			return fmt.Errorf("sign CRL: %w", err)
		}
		return tx.PutCRL(&gatehouse.CRL{Scope: scope, Number: number, DER: der, ThisUpdate: now, NextUpdate: now.Add(crlValidity)})
	})
}

// OCSP answers an RFC 6960 request about a certificate of scope. Like the
// CRL it needs no authorisation.
func (s *Service) OCSP(ctx context.Context, scope string, req []byte) ([]byte, error) {
	if err := gatehouse.ValidateScopeID(scope); err != nil {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "scope %q not found", scope)
	}
	auth, err := s.authority(ctx, scope)
	if err != nil {
		return nil, err
	}
	now := s.timestamp()
	return auth.OCSPResponse(req, func(serial *big.Int) (ca.OCSPStatus, error) {
		c, err := s.store.GetCredential(ctx, scope, SerialHex(serial))
		if gatehouse.ErrorCode(err) == gatehouse.ENotFound || err == nil && c.Kind != gatehouse.CredentialX509 {
			return ca.OCSPStatus{Status: ocsp.Unknown}, nil
		} else if err != nil {
			return ca.OCSPStatus{}, err
		}
		if c.Status == gatehouse.CredentialRevoked && c.RevokedAt != nil {
			return ca.OCSPStatus{Status: ocsp.Revoked, RevokedAt: *c.RevokedAt, Reason: gatehouse.RevocationReasons[c.RevocationReason]}, nil
		}
		return ca.OCSPStatus{Status: ocsp.Good}, nil
	}, now)
}

// SetScopePolicy changes a scope's policy (credentials, MQTT topics).
func (s *Service) SetScopePolicy(ctx context.Context, p *gatehouse.Principal, scope string, policy gatehouse.ScopePolicy) (*gatehouse.Scope, error) {
	if err := p.Authorize(scope, gatehouse.RoleAdmin); err != nil {
		return nil, err
	}
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	if policy.MQTT != nil && len(policy.MQTT.TopicTemplates) == 0 {
		policy.MQTT = nil // the defaults
	}
	var out *gatehouse.Scope
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		sc, err := tx.GetScope(scope)
		if err != nil {
			return notFoundScope(err, scope)
		}
		sc.Policy = policy
		if err := tx.UpdateScope(sc); err != nil {
			return err
		}
		out = sc
		return ev.append(scope, gatehouse.EventScopeUpdated, p.Actor(), "scopes/"+scope, s.timestamp(), map[string]any{"policy": policy})
	})
	s.policies.forget(scope)
	return out, err
}

// AuthenticateCertificate checks a device certificate presented in scope:
// the chain must lead to the scope's issuing CA (never another scope's), the
// certificate must be a credential the registry holds as active now (not
// revoked, superseded or expired), and the device's state must allow
// authentication. Every check reads the database, so a revocation takes
// effect at the next check.
func (s *Service) AuthenticateCertificate(ctx context.Context, scope string, leaf *x509.Certificate, intermediates []*x509.Certificate) (*gatehouse.Device, *gatehouse.Credential, error) {
	denied := gatehouse.Errorf(gatehouse.EUnauthenticated, "the certificate is not valid for scope %q", scope)
	auth, err := s.authority(ctx, scope)
	if err != nil {
		if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
			return nil, nil, denied
		}
		return nil, nil, err
	}
	now := s.timestamp()
	if !s.verified.ok(scope, auth.Certificate(), leaf, now) {
		roots := x509.NewCertPool()
		roots.AddCert(auth.Certificate())
		inter := x509.NewCertPool()
		for _, c := range intermediates {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return nil, nil, denied
		}
		s.verified.add(scope, auth.Certificate(), leaf)
	}
	sc, deviceID, err := ca.IdentityFromCertificate(leaf)
	if err != nil || sc != scope {
		return nil, nil, denied
	}
	c, err := s.store.GetCredential(ctx, scope, SerialHex(leaf.SerialNumber))
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return nil, nil, denied
	} else if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(leaf.Raw)
	if c.DeviceID != deviceID || c.Thumbprint != hex.EncodeToString(sum[:]) {
		return nil, nil, denied
	}
	if st := c.EffectiveStatus(now); st != gatehouse.CredentialActive {
		return nil, nil, gatehouse.Errorf(gatehouse.EUnauthenticated, "the certificate is %s", st)
	}
	d, err := s.store.GetDevice(ctx, scope, deviceID)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return nil, nil, denied
	} else if err != nil {
		return nil, nil, err
	}
	if !d.State.CanAuthenticate() {
		return nil, nil, gatehouse.Errorf(gatehouse.EForbidden, "device %q is %s and may not authenticate", deviceID, d.State)
	}
	return d, c, nil
}

// RenewCertificate issues a new certificate to a device that authenticated
// with its current one (EST simplereenroll); the old one enters its overlap
// window.
func (s *Service) RenewCertificate(ctx context.Context, scope, deviceID string, csr *x509.CertificateRequest) (*IssuedCertificate, error) {
	return s.issueCertificate(ctx, "device:"+deviceID, scope, deviceID, csr)
}
