package devicehttp

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/provision"
)

// nativeStatus is the native dialect's one error table: gatehouse code to
// HTTP status, answered as application/problem+json carrying the code. Codes
// missing here are answered 500 and logged.
var nativeStatus = map[string]int{
	gatehouse.EInvalid:           http.StatusBadRequest,
	gatehouse.EInvalidID:         http.StatusBadRequest,
	gatehouse.EInvalidJSON:       http.StatusBadRequest,
	gatehouse.EUnknownField:      http.StatusBadRequest,
	gatehouse.ETooLarge:          http.StatusBadRequest,
	gatehouse.ECSRInvalid:        http.StatusBadRequest,
	gatehouse.EUnsupportedKey:    http.StatusBadRequest,
	gatehouse.EInvalidPEM:        http.StatusBadRequest,
	gatehouse.EInvalidTransition: http.StatusBadRequest,
	gatehouse.EBodyTooLarge:      http.StatusRequestEntityTooLarge,
	gatehouse.EUnsupportedMedia:  http.StatusUnsupportedMediaType,

	gatehouse.EUnauthenticated:    http.StatusUnauthorized,
	gatehouse.EAttestationFailed:  http.StatusUnauthorized,
	gatehouse.EEnrollmentNotFound: http.StatusUnauthorized,

	gatehouse.EForbidden:          http.StatusForbidden,
	gatehouse.EEnrollmentDisabled: http.StatusForbidden,
	gatehouse.EEnrollmentExpired:  http.StatusForbidden,
	gatehouse.EDeviceDisabled:     http.StatusForbidden,
	gatehouse.EDeviceQuarantined:  http.StatusForbidden,
	gatehouse.EReprovisionRefused: http.StatusForbidden,
	gatehouse.EWebhookDenied:      http.StatusForbidden,
	gatehouse.EQuotaExceeded:      http.StatusForbidden,
	gatehouse.ECredentialDenied:   http.StatusForbidden,

	gatehouse.ENotFound:           http.StatusNotFound,
	gatehouse.EMethodNotAllowed:   http.StatusMethodNotAllowed,
	gatehouse.EConflict:           http.StatusConflict,
	gatehouse.EPreconditionFailed: http.StatusPreconditionFailed,
	gatehouse.ERateLimited:        http.StatusTooManyRequests,
	gatehouse.EInternal:           http.StatusInternalServerError,
	gatehouse.EWebhookFailed:      http.StatusServiceUnavailable,
	gatehouse.EUnavailable:        http.StatusServiceUnavailable,
}

// nativeOpaque is the detail of every 401: the code says more (a device
// may tell "no credentials" from "refused"), never which part was wrong.
const nativeOpaque = "authentication failed: send a SAS token (Authorization: SharedAccessSignature ...), a bootstrap token (Authorization: Bootstrap ...) or a client certificate enrolled in this scope"

// problemTypeBase prefixes a problem's code to form its type URI, as the
// admin API does.
const problemTypeBase = "https://gatehouse.dev/problems/"

// problem is an RFC 9457 problem details object with Gatehouse's code.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Code     string `json:"code"`
	Instance string `json:"instance,omitempty"`
}

type native struct{}

func (native) name() string { return "native" }

func (d native) writeError(h *handler, w http.ResponseWriter, r *http.Request, err error) {
	code, msg := gatehouse.ErrorCode(err), gatehouse.ErrorMessage(err)
	status, known := nativeStatus[code]
	h.logFailure(r, d, code, known, err)
	if !known {
		status, code = http.StatusInternalServerError, gatehouse.EInternal
	}
	switch status {
	case http.StatusUnauthorized:
		// One code too: attestation_failed and enrollment_not_found
		// would tell an unknown registration ID from a wrong secret.
		code, msg = gatehouse.EUnauthenticated, nativeOpaque
		w.Header().Set("WWW-Authenticate", `Bootstrap realm="gatehouse-device"`)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", retryAfterSeconds(err, 1))
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfterSeconds(err, 5))
	case http.StatusInternalServerError:
		msg = "internal error; the server log has the details"
	}
	body, _ := json.Marshal(problem{Type: problemTypeBase + code, Title: http.StatusText(status), Status: status,
		Detail: msg, Code: code, Instance: r.URL.Path})
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// nativeRegisterBody is the body of POST /device/v1/{scope}/register.
type nativeRegisterBody struct {
	RegistrationID string          `json:"registrationId"`
	EnrollmentID   string          `json:"enrollmentId,omitempty"`
	CSR            string          `json:"csr,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
}

// nativeRegistration is the answer to a native registration.
type nativeRegistration struct {
	RegistrationID string            `json:"registrationId"`
	DeviceID       string            `json:"deviceId"`
	Scope          string            `json:"scope"`
	EnrollmentID   string            `json:"enrollmentId,omitempty"`
	Status         string            `json:"status"`
	Substatus      string            `json:"substatus,omitempty"`
	AssignedHub    string            `json:"assignedHub,omitempty"`
	Certificate    string            `json:"certificate,omitempty"` // PEM, the leaf
	Chain          string            `json:"chain,omitempty"`       // PEM, the issuing CA through the root
	Config         json.RawMessage   `json:"config,omitempty"`
	Tags           map[string]string `json:"tags"`
	Payload        json.RawMessage   `json:"payload,omitempty"`
}

// nativeRenewal is the answer to a native renewal.
type nativeRenewal struct {
	Certificate string    `json:"certificate"`
	Chain       string    `json:"chain"`
	NotAfter    time.Time `json:"notAfter"`
}

// decodeJSONBody decodes a native request body strictly: one JSON object,
// no unknown members, nothing after it.
func (h *handler) decodeJSONBody(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return gatehouse.Errorf(gatehouse.EUnsupportedMedia, "send Content-Type: application/json")
		}
	}
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrictJSON(body, v)
}

func decodeStrictJSON(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return gatehouse.Errorf(gatehouse.EInvalidJSON, "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return gatehouse.Errorf(gatehouse.EUnknownField, "unknown member %s", truncate(field, 80))
		}
		return gatehouse.Errorf(gatehouse.EInvalidJSON, "the body is not valid: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return gatehouse.Errorf(gatehouse.EInvalidJSON, "the body has data after its JSON object")
	}
	return nil
}

// nativeRequest builds the core's request from the credentials: a SAS
// token or a bootstrap token in Authorization, else the TLS client chain.
func nativeRequest(r *http.Request) (provision.Request, error) {
	req := provision.Request{Scope: r.PathValue("scope"), Dialect: "native", Source: sourceOf(r)}
	switch authz := r.Header.Get("Authorization"); {
	case hasSchemePrefix(authz, "SharedAccessSignature"):
		req.SAS = authz
	case hasSchemePrefix(authz, "Bootstrap"):
		req.Token = string(bytes.TrimSpace([]byte(authz[len("Bootstrap"):])))
		if req.Token == "" {
			return req, gatehouse.Errorf(gatehouse.EUnauthenticated, "empty bootstrap token")
		}
	case authz != "":
		return req, gatehouse.Errorf(gatehouse.EUnauthenticated, "unsupported Authorization scheme")
	default:
		if req.Chain = peerChain(r); req.Chain == nil {
			return req, gatehouse.Errorf(gatehouse.EUnauthenticated, "no credentials")
		}
	}
	return req, nil
}

// nativeRegister handles POST /device/v1/{scope}/register: one synchronous
// registration, answered with everything the device needs.
func (h *handler) nativeRegister(w http.ResponseWriter, r *http.Request) error {
	req, err := nativeRequest(r)
	if err != nil {
		return err
	}
	var in nativeRegisterBody
	if err := h.decodeJSONBody(w, r, &in); err != nil {
		return err
	}
	if in.RegistrationID == "" {
		return gatehouse.Errorf(gatehouse.EInvalid, "registrationId is required")
	}
	req.RegistrationID, req.EnrollmentID = in.RegistrationID, in.EnrollmentID
	if len(in.Payload) > 0 && !bytes.Equal(in.Payload, []byte("null")) {
		req.Payload = in.Payload
	}
	if in.CSR != "" {
		req.CSR = []byte(in.CSR)
	}
	res, err := h.p.Register(r.Context(), req)
	if err != nil {
		return err
	}
	reg, d := res.Registration, res.Device
	out := nativeRegistration{RegistrationID: req.RegistrationID, DeviceID: d.ID, Scope: req.Scope, EnrollmentID: reg.EnrollmentID,
		Status: string(reg.Status), Substatus: reg.Substatus, AssignedHub: res.AssignedHub,
		Config: d.Config, Tags: d.Tags, Payload: res.Payload}
	if out.Tags == nil {
		out.Tags = map[string]string{}
	}
	if res.Certificate != nil {
		out.Certificate = string(pemCert(res.Certificate))
		out.Chain = string(pemChain(res.Chain))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// nativeRenew handles POST /device/v1/{scope}/renew: the device presents
// its current certificate on the TLS connection and a new CSR.
func (h *handler) nativeRenew(w http.ResponseWriter, r *http.Request) error {
	chain := peerChain(r)
	if chain == nil {
		return gatehouse.Errorf(gatehouse.EUnauthenticated, "present the current certificate as the TLS client certificate")
	}
	var in struct {
		CSR string `json:"csr"`
	}
	if err := h.decodeJSONBody(w, r, &in); err != nil {
		return err
	}
	if in.CSR == "" {
		return gatehouse.Errorf(gatehouse.ECSRInvalid, "csr is required: a PEM CERTIFICATE REQUEST")
	}
	res, err := h.p.Reenroll(r.Context(), r.PathValue("scope"), chain, []byte(in.CSR), sourceOf(r))
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(res.Certificate)
	if err != nil {
		return err // the core issued something that does not parse: internal
	}
	writeJSON(w, http.StatusOK, nativeRenewal{Certificate: string(pemCert(res.Certificate)), Chain: string(pemChain(res.Chain)),
		NotAfter: cert.NotAfter.UTC()})
	return nil
}

// nativeCA handles GET /device/v1/{scope}/ca: the scope's issuing CA
// through the root, PEM. It needs no authentication.
func (h *handler) nativeCA(w http.ResponseWriter, r *http.Request) error {
	chain, err := h.p.CAChain(r.Context(), r.PathValue("scope"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.WriteHeader(http.StatusOK)
	w.Write(pemChain(chain))
	return nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemChain(chain []*x509.Certificate) []byte {
	var out []byte
	for _, c := range chain {
		out = append(out, pemCert(c.Raw)...)
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
