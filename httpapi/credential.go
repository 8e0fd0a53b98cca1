package httpapi

import (
	"bytes"
	"iter"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// certificateRequest asks for a device certificate.
type certificateRequest struct {
	CSR string `json:"csr"` // PKCS #10, PEM
}

func (h *Handler) issueCertificate(w http.ResponseWriter, r *http.Request) error {
	var req certificateRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.CSR) == "" {
		return gatehouse.Errorf(gatehouse.ECSRInvalid, "csr is empty; send a PKCS #10 CSR in PEM, e.g. from openssl req -new")
	}
	ic, err := h.reg.IssueCertificate(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"), []byte(req.CSR))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, ic)
}

func (h *Handler) deviceCredentials(w http.ResponseWriter, r *http.Request) error {
	creds, err := h.reg.DeviceCredentials(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newList(creds))
}

func (h *Handler) listCredentials(w http.ResponseWriter, r *http.Request) error {
	q, err := parseCredentialQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	page, err := h.reg.ListCredentials(r.Context(), principal(r), r.PathValue("scope"), q)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list[*gatehouse.Credential]{Items: newList(page.Items).Items, NextCursor: page.NextCursor})
}

// revokeRequest is the optional body of a revocation.
type revokeRequest struct {
	Reason string `json:"reason,omitempty"` // RFC 5280 reason name; default unspecified
}

// revokeCertificate revokes a certificate by serial. The body is optional:
// an empty one revokes for reason unspecified.
func (h *Handler) revokeCertificate(w http.ResponseWriter, r *http.Request) error {
	req, err := h.decodeRevokeRequest(w, r)
	if err != nil {
		return err
	}
	c, err := h.reg.RevokeCertificate(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("serial"), req.Reason)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

// revokeCredential revokes one credential of a device by ID, whatever its
// kind (certificate, symmetric key, bootstrap token).
func (h *Handler) revokeCredential(w http.ResponseWriter, r *http.Request) error {
	req, err := h.decodeRevokeRequest(w, r)
	if err != nil {
		return err
	}
	c, err := h.reg.RevokeCredential(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"), r.PathValue("credentialId"), req.Reason)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

// decodeRevokeRequest reads a revocation's optional body.
func (h *Handler) decodeRevokeRequest(w http.ResponseWriter, r *http.Request) (revokeRequest, error) {
	var req revokeRequest
	body, err := readCapped(w, r, h.maxBody)
	if err != nil {
		return req, err
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := checkContentType(r.Header.Get("Content-Type"), []string{mediaJSON}); err != nil {
			return req, err
		}
		if err := gatehouse.DecodeStrict(body, &req); err != nil {
			return req, err
		}
	}
	return req, nil
}

// policyRequest is a scope policy as sent: durations as strings ("90d",
// "36h"), so that a bad one is reported by field.
type policyRequest struct {
	CertValidity   string                `json:"certValidity,omitempty"`
	RenewalOverlap string                `json:"renewalOverlap,omitempty"`
	ExpiryLeadTime string                `json:"expiryLeadTime,omitempty"`
	MQTT           *gatehouse.MQTTPolicy `json:"mqtt,omitempty"`
}

// setScopePolicy replaces a scope's credential policy; an absent field takes
// its default.
func (h *Handler) setScopePolicy(w http.ResponseWriter, r *http.Request) error {
	var req policyRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	policy := gatehouse.ScopePolicy{MQTT: req.MQTT}
	for _, f := range []struct {
		name string
		val  string
		dst  *gatehouse.Duration
	}{
		{"certValidity", req.CertValidity, &policy.CertValidity},
		{"renewalOverlap", req.RenewalOverlap, &policy.RenewalOverlap},
		{"expiryLeadTime", req.ExpiryLeadTime, &policy.ExpiryLeadTime},
	} {
		if f.val == "" {
			continue
		}
		d, err := gatehouse.ParseDuration(f.val)
		if err != nil {
			return gatehouse.Errorf(gatehouse.EInvalid, "%s: %s", f.name, gatehouse.ErrorMessage(err))
		}
		*f.dst = d
	}
	sc, err := h.reg.SetScopePolicy(r.Context(), principal(r), r.PathValue("scope"), policy)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sc)
}

// parseCredentialQuery turns a credential listing's query string into a
// registry.CredentialQuery. status and kind may repeat or be
// comma-separated; expiringBefore is an RFC 3339 time.
func parseCredentialQuery(raw string) (registry.CredentialQuery, error) {
	var cq registry.CredentialQuery
	q, err := parseQuery(raw, "expiringBefore", "device", "status", "kind", "limit", "cursor")
	if err != nil {
		return cq, err
	}
	for s := range listValues(q["status"]) {
		st := gatehouse.CredentialStatus(s)
		switch st {
		case gatehouse.CredentialActive, gatehouse.CredentialSuperseded, gatehouse.CredentialRevoked, gatehouse.CredentialExpired:
		default:
			return cq, gatehouse.Errorf(gatehouse.EInvalid, "unknown status %q in filter; statuses are active, superseded, revoked, expired", truncate(s, 64))
		}
		if len(cq.Statuses) >= 4 {
			return cq, gatehouse.Errorf(gatehouse.EInvalid, "the status filter names more statuses than there are")
		}
		cq.Statuses = append(cq.Statuses, st)
	}
	for s := range listValues(q["kind"]) {
		k := gatehouse.CredentialKind(s)
		switch k {
		case gatehouse.CredentialX509, gatehouse.CredentialSymmetricKey, gatehouse.CredentialToken:
		default:
			return cq, gatehouse.Errorf(gatehouse.EInvalid, "unknown kind %q in filter; kinds are x509, symmetric_key, token", truncate(s, 64))
		}
		if len(cq.Kinds) >= 3 {
			return cq, gatehouse.Errorf(gatehouse.EInvalid, "the kind filter names more kinds than there are")
		}
		cq.Kinds = append(cq.Kinds, k)
	}
	exp, err := single(q, "expiringBefore")
	if err != nil {
		return cq, err
	}
	if exp != "" {
		t, err := time.Parse(time.RFC3339Nano, exp)
		if err != nil {
			return cq, gatehouse.Errorf(gatehouse.EInvalid, "expiringBefore %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z (percent-encode a '+' offset)", truncate(exp, 64))
		}
		t = t.UTC()
		cq.ExpiringBefore = &t
	}
	if cq.DeviceID, err = single(q, "device"); err != nil {
		return cq, err
	}
	if cq.Limit, err = parseLimit(q, registry.MaxPageSize); err != nil {
		return cq, err
	}
	if cq.Cursor, err = single(q, "cursor"); err != nil {
		return cq, err
	}
	return cq, nil
}

// listValues yields the non-empty items of repeated, comma-separated
// query values.
func listValues(vs []string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, v := range vs {
			for s := range strings.SplitSeq(v, ",") {
				if s = strings.TrimSpace(s); s != "" && !yield(s) {
					return
				}
			}
		}
	}
}
