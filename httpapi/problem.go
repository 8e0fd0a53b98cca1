package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gatehouse-iot/gatehouse"
)

// problemTypeBase prefixes a problem's code to form its type URI.
const problemTypeBase = "https://gatehouse.dev/problems/"

// statusOf is the one table mapping Gatehouse error codes to HTTP statuses.
// A code missing here is a bug: it is answered 500 and logged.
//
// The provisioning codes are mapped for the admin API's callers, who are
// operators, not devices. attestation_failed reaches this API only when a
// group CA's proof of possession is refused (POST .../verify): that is a
// bad request body, so 400, not 401, which would tell the caller that its
// API token is wrong. The states of an enrollment or device that refuse a
// registration are conflicts (409); a pre-provisioning webhook's refusal
// is 403 and its failure to answer 503.
var statusOf = map[string]int{
	gatehouse.EInvalid:            http.StatusBadRequest,
	gatehouse.EInvalidID:          http.StatusBadRequest,
	gatehouse.EInvalidJSON:        http.StatusBadRequest,
	gatehouse.EUnknownField:       http.StatusBadRequest,
	gatehouse.EInvalidCursor:      http.StatusBadRequest,
	gatehouse.EInvalidSelector:    http.StatusBadRequest,
	gatehouse.ETooLarge:           http.StatusBadRequest,
	gatehouse.ECSRInvalid:         http.StatusBadRequest,
	gatehouse.EUnsupportedKey:     http.StatusBadRequest,
	gatehouse.EInvalidPEM:         http.StatusBadRequest,
	gatehouse.EInvalidCA:          http.StatusBadRequest,
	gatehouse.EAttestationFailed:  http.StatusBadRequest,
	gatehouse.EUnauthenticated:    http.StatusUnauthorized,
	gatehouse.EForbidden:          http.StatusForbidden,
	gatehouse.ENotFound:           http.StatusNotFound,
	gatehouse.EEnrollmentNotFound: http.StatusNotFound,
	gatehouse.EMethodNotAllowed:   http.StatusMethodNotAllowed,
	gatehouse.EConflict:           http.StatusConflict,
	gatehouse.EInvalidTransition:  http.StatusConflict,
	gatehouse.EAlreadyRevoked:     http.StatusConflict,
	gatehouse.ECredentialDenied:   http.StatusConflict,
	gatehouse.EEnrollmentDisabled: http.StatusConflict,
	gatehouse.EEnrollmentExpired:  http.StatusConflict,
	gatehouse.EQuotaExceeded:      http.StatusConflict,
	gatehouse.EDeviceQuarantined:  http.StatusConflict,
	gatehouse.EDeviceDisabled:     http.StatusConflict,
	gatehouse.EReprovisionRefused: http.StatusConflict,
	gatehouse.EWebhookDenied:      http.StatusForbidden,
	gatehouse.EWebhookFailed:      http.StatusServiceUnavailable,
	gatehouse.EPreconditionFailed: http.StatusPreconditionFailed,
	gatehouse.EBodyTooLarge:       http.StatusRequestEntityTooLarge,
	gatehouse.EUnsupportedMedia:   http.StatusUnsupportedMediaType,
	gatehouse.ERateLimited:        http.StatusTooManyRequests,
	gatehouse.EInternal:           http.StatusInternalServerError,
	gatehouse.EUnavailable:        http.StatusServiceUnavailable,
}

// Problem is an RFC 9457 problem details object, extended with Gatehouse's
// machine-readable error code.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Code     string `json:"code"`
	Instance string `json:"instance,omitempty"`
}

// serveError answers a request whose handler failed. Internal causes are
// logged here, once, and never reach the client.
func (h *Handler) serveError(w http.ResponseWriter, r *http.Request, err error) {
	code := gatehouse.ErrorCode(err)
	msg := gatehouse.ErrorMessage(err)
	if _, known := statusOf[code]; !known {
		h.log.ErrorContext(r.Context(), "error with an unmapped code", "code", code, "method", r.Method, "path", r.URL.Path, "err", err)
		code, msg = gatehouse.EInternal, gatehouse.ErrorMessage(errors.New(code))
	} else if code == gatehouse.EInternal || code == gatehouse.EUnavailable {
		h.log.ErrorContext(r.Context(), "request failed", "code", code, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if rec, ok := w.(*recorder); ok && rec.wrote {
		// A stream already under way: the status line is gone. Log what
		// the client could not be told, unless it was logged above.
		if code != gatehouse.EInternal && code != gatehouse.EUnavailable {
			h.log.WarnContext(r.Context(), "error after the response started", "code", code, "path", r.URL.Path, "err", err)
		}
		return
	}
	h.writeProblem(w, r, code, msg)
}

// writeProblem writes a problem response for a mapped code.
func (h *Handler) writeProblem(w http.ResponseWriter, r *http.Request, code, detail string) {
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
	}
	body, _ := json.Marshal(Problem{
		Type:     problemTypeBase + code,
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Code:     code,
		Instance: r.URL.Path,
	})
	hdr := w.Header()
	hdr.Del("ETag")
	hdr.Del("Location")
	hdr.Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
