package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// Enrollments hold secrets: a symmetric key or bootstrap token is generated
// by the registry and appears once, in the answer to the creation. Like every
// body, neither that request nor that answer ever reaches a log line; the
// access log records the method, path and status only.

func enrollmentPath(scope, id string) string {
	return "/v1/scopes/" + url.PathEscape(scope) + "/enrollments/" + url.PathEscape(id)
}

func (h *Handler) createEnrollment(w http.ResponseWriter, r *http.Request) error {
	var req registry.EnrollmentCreate
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	// These members are the registry's to fill; accepting them silently
	// would let a client believe it had set them.
	switch a := req.Attestation; {
	case a.Uses != 0:
		return gatehouse.Errorf(gatehouse.EInvalid, "attestation.uses is counted by the server; omit it")
	case a.VerificationCode != "":
		return gatehouse.Errorf(gatehouse.EInvalid, "attestation.verificationCode is issued by POST .../verification-code; omit it")
	}
	e, err := h.reg.CreateEnrollment(r.Context(), principal(r), r.PathValue("scope"), req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", enrollmentPath(e.Scope, e.ID))
	return writeEnrollment(w, http.StatusCreated, e)
}

func (h *Handler) getEnrollment(w http.ResponseWriter, r *http.Request) error {
	e, err := h.reg.GetEnrollment(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeEnrollment(w, http.StatusOK, e)
}

func (h *Handler) listEnrollments(w http.ResponseWriter, r *http.Request) error {
	typ, cursor, limit, err := parseEnrollmentQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	page, err := h.reg.ListEnrollments(r.Context(), principal(r), r.PathValue("scope"), typ, cursor, limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list[*gatehouse.Enrollment]{Items: newList(page.Items).Items, NextCursor: page.NextCursor})
}

// parseEnrollmentQuery parses an enrollment listing's query string.
func parseEnrollmentQuery(raw string) (typ gatehouse.EnrollmentType, cursor string, limit int, err error) {
	q, err := parseQuery(raw, "type", "limit", "cursor")
	if err != nil {
		return "", "", 0, err
	}
	t, err := single(q, "type")
	if err != nil {
		return "", "", 0, err
	}
	switch typ = gatehouse.EnrollmentType(t); typ {
	case "", gatehouse.EnrollmentGroup, gatehouse.EnrollmentIndividual:
	default:
		return "", "", 0, gatehouse.Errorf(gatehouse.EInvalid, "type must be group or individual")
	}
	if limit, err = parseLimit(q, registry.MaxPageSize); err != nil {
		return "", "", 0, err
	}
	if cursor, err = single(q, "cursor"); err != nil {
		return "", "", 0, err
	}
	if _, err := gatehouse.DecodeCursor(cursor); err != nil {
		return "", "", 0, err
	}
	return typ, cursor, limit, nil
}

// maxPatchAttempts bounds the retries of an unconditional patch that lost
// a race with another write.
const maxPatchAttempts = 3

// patchEnrollment applies a JSON merge patch (RFC 7386) to an enrollment's
// policy: a member absent stays, a member set to null returns to its
// default, and an object member (initialTags, credentials, allocation,
// preProvisionWebhook) is merged rather than replaced. The merge is made
// against the enrollment as read, and written only if it is unchanged
// since, so a concurrent write is never lost: a request with If-Match gets
// 412, one without is merged again.
func (h *Handler) patchEnrollment(w http.ResponseWriter, r *http.Request) error {
	body, err := h.readBody(w, r, mediaMergePatch, mediaJSON)
	if err != nil {
		return err
	}
	// Types and unknown members are checked on the patch as sent, so that
	// the messages name what the client wrote.
	var check registry.EnrollmentPatch
	if err := gatehouse.DecodeStrict(body, &check); err != nil {
		return err
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return gatehouse.Errorf(gatehouse.EInvalidJSON, "the body must be a JSON object (a merge patch)")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return gatehouse.Errorf(gatehouse.EInvalidJSON, "the body must be a JSON object (a merge patch)")
	}
	scope, id, p := r.PathValue("scope"), r.PathValue("id"), principal(r)
	conditional := ifMatch(r) != "" && ifMatch(r) != "*"
	for attempt := 1; ; attempt++ {
		cur, err := h.reg.GetEnrollment(r.Context(), p, scope, id)
		if err != nil {
			return err
		}
		if err := checkEnrollmentIfMatch(ifMatch(r), cur); err != nil {
			return err
		}
		patch, err := mergeEnrollmentPatch(cur, body, members)
		if err != nil {
			return err
		}
		e, err := h.reg.PatchEnrollment(r.Context(), p, scope, id, patch, cur.ETag)
		if gatehouse.ErrorCode(err) == gatehouse.EPreconditionFailed && !conditional && attempt < maxPatchAttempts {
			continue
		} else if err != nil {
			return err
		}
		return writeEnrollment(w, http.StatusOK, e)
	}
}

// checkEnrollmentIfMatch compares an If-Match list (quoted, weak or "*")
// with the enrollment's etag.
func checkEnrollmentIfMatch(ifMatch string, e *gatehouse.Enrollment) error {
	if ifMatch == "" {
		return nil
	}
	for tag := range strings.SplitSeq(ifMatch, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || strings.Trim(tag, `"`) == e.ETag {
			return nil
		}
	}
	return gatehouse.Errorf(gatehouse.EPreconditionFailed, "enrollment %q has changed since you read it (its etag is now %q); read it again and retry", e.ID, e.ETag)
}

// mergeEnrollmentPatch merges body into the patchable members of cur and
// returns a registry patch setting exactly the members body names.
func mergeEnrollmentPatch(cur *gatehouse.Enrollment, body []byte, members map[string]json.RawMessage) (registry.EnrollmentPatch, error) {
	var out registry.EnrollmentPatch
	view := registry.EnrollmentPatch{
		Enabled: &cur.Enabled, DeviceIDTemplate: &cur.DeviceIDTemplate, InitialTags: cur.InitialTags,
		InitialConfig: cur.InitialConfig, Credentials: &cur.Credentials, Allocation: &cur.Allocation,
		Reprovision: &cur.Reprovision, PreProvision: cur.PreProvision, MaxRegistrations: &cur.MaxRegistrations,
		ExpiresAt: cur.ExpiresAt,
	}
	target, err := json.Marshal(view)
	if err != nil {
		return out, err
	}
	merged, err := gatehouse.MergePatch(target, body)
	if err != nil {
		return out, err
	}
	var full registry.EnrollmentPatch
	if err := gatehouse.DecodeStrict(merged, &full); err != nil {
		return out, err
	}
	for name, raw := range members {
		removed := bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
		switch name {
		case "enabled":
			if removed {
				return out, gatehouse.Errorf(gatehouse.EInvalid, "enabled must be true or false")
			}
			out.Enabled = full.Enabled
		case "deviceIdTemplate":
			out.DeviceIDTemplate = full.DeviceIDTemplate
			if removed {
				out.DeviceIDTemplate = new("")
			}
		case "initialTags":
			out.InitialTags = full.InitialTags
			if out.InitialTags == nil {
				out.InitialTags = map[string]string{}
			}
		case "initialConfig":
			out.InitialConfig = full.InitialConfig
			if removed || len(out.InitialConfig) == 0 {
				out.InitialConfig = json.RawMessage("null")
			}
		case "credentials":
			out.Credentials = full.Credentials
			if out.Credentials == nil {
				out.Credentials = &gatehouse.CredentialPolicy{}
			}
		case "allocation":
			out.Allocation = full.Allocation
			if out.Allocation == nil {
				out.Allocation = &gatehouse.Allocation{}
			}
		case "reprovision":
			out.Reprovision = full.Reprovision
			if removed {
				out.Reprovision = new(gatehouse.ReprovisionPolicy(""))
			}
		case "preProvisionWebhook":
			out.PreProvision = full.PreProvision
			if removed {
				out.PreProvision = &gatehouse.Webhook{} // no URL: the registry removes it
			}
		case "maxRegistrations":
			out.MaxRegistrations = full.MaxRegistrations
			if removed {
				out.MaxRegistrations = new(0)
			}
		case "expiresAt":
			out.ExpiresAt = full.ExpiresAt
			if removed {
				out.ExpiresAt = &time.Time{} // the zero time: the enrollment no longer expires
			}
		}
	}
	return out, nil
}

// deleteEnrollment removes an enrollment; devices it admitted stay. An
// If-Match is checked against the enrollment as read just before.
func (h *Handler) deleteEnrollment(w http.ResponseWriter, r *http.Request) error {
	scope, id, p := r.PathValue("scope"), r.PathValue("id"), principal(r)
	if im := ifMatch(r); im != "" {
		cur, err := h.reg.GetEnrollment(r.Context(), p, scope, id)
		if err != nil {
			return err
		}
		if err := checkEnrollmentIfMatch(im, cur); err != nil {
			return err
		}
	}
	if err := h.reg.DeleteEnrollment(r.Context(), p, scope, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// verificationCode is the answer to a request for a proof-of-possession
// challenge.
type verificationCode struct {
	VerificationCode string `json:"verificationCode"`
}

// newVerificationCode starts proof of possession of a group's CA key: the
// operator signs a certificate whose subject CN is the code with that key.
// The request has no body; an empty JSON object is accepted too.
func (h *Handler) newVerificationCode(w http.ResponseWriter, r *http.Request) error {
	body, err := readCapped(w, r, h.maxBody)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := checkContentType(r.Header.Get("Content-Type"), []string{mediaJSON}); err != nil {
			return err
		}
		if err := gatehouse.DecodeStrict(body, &struct{}{}); err != nil {
			return err
		}
	}
	code, err := h.reg.NewVerificationCode(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, verificationCode{code})
}

// verifyRequest completes proof of possession.
type verifyRequest struct {
	Certificate string `json:"certificate"` // PEM, signed by the group's CA, CN = the verification code
}

func (h *Handler) verifyCA(w http.ResponseWriter, r *http.Request) error {
	var req verifyRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Certificate) == "" {
		return gatehouse.Errorf(gatehouse.EInvalidPEM, "certificate is empty; send a PEM certificate signed by the group's CA whose subject CN is the verification code")
	}
	e, err := h.reg.VerifyCA(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"), req.Certificate)
	if err != nil {
		return err
	}
	return writeEnrollment(w, http.StatusOK, e)
}

func (h *Handler) getRegistration(w http.ResponseWriter, r *http.Request) error {
	reg, err := h.reg.GetRegistration(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("registrationId"))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", quoteETag(reg.ETag))
	return writeJSON(w, http.StatusOK, reg)
}

// writeEnrollment writes an enrollment with its etag in the ETag header.
func writeEnrollment(w http.ResponseWriter, status int, e *gatehouse.Enrollment) error {
	w.Header().Set("ETag", quoteETag(e.ETag))
	return writeJSON(w, status, e)
}
