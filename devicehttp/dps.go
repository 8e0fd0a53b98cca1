package devicehttp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/provision"
)

// DPS API versions the Azure device SDKs send.
var dpsAPIVersions = map[string]bool{"2019-03-31": true, "2021-06-01": true}

// dpsError is how the DPS dialect answers one gatehouse error code.
type dpsError struct {
	status int // HTTP status
	code   int // the numeric errorCode of the body
}

// dpsErrors is the DPS dialect's one error table. Codes missing here are
// answered as internal errors (and logged). See the package documentation
// for the same table in prose.
var dpsErrors = map[string]dpsError{
	gatehouse.EInvalid:           {http.StatusBadRequest, 400004},
	gatehouse.EInvalidID:         {http.StatusBadRequest, 400004},
	gatehouse.EInvalidJSON:       {http.StatusBadRequest, 400004},
	gatehouse.EUnknownField:      {http.StatusBadRequest, 400004},
	gatehouse.ETooLarge:          {http.StatusBadRequest, 400004},
	gatehouse.ECSRInvalid:        {http.StatusBadRequest, 400004},
	gatehouse.EUnsupportedKey:    {http.StatusBadRequest, 400004},
	gatehouse.EInvalidPEM:        {http.StatusBadRequest, 400004},
	gatehouse.EInvalidTransition: {http.StatusBadRequest, 400004},
	gatehouse.EUnsupportedMedia:  {http.StatusUnsupportedMediaType, 415001},
	gatehouse.EBodyTooLarge:      {http.StatusRequestEntityTooLarge, 413001},

	// One answer, so that a client cannot tell an unknown registration ID
	// (or scope) from a wrong key: see dpsOpaque.
	gatehouse.EUnauthenticated:    {http.StatusUnauthorized, 401002},
	gatehouse.EAttestationFailed:  {http.StatusUnauthorized, 401002},
	gatehouse.EEnrollmentNotFound: {http.StatusUnauthorized, 401002},

	gatehouse.EForbidden:          {http.StatusForbidden, 403000},
	gatehouse.EEnrollmentDisabled: {http.StatusForbidden, 403001},
	gatehouse.EEnrollmentExpired:  {http.StatusForbidden, 403002},
	gatehouse.EDeviceDisabled:     {http.StatusForbidden, 403003},
	gatehouse.EDeviceQuarantined:  {http.StatusForbidden, 403004},
	gatehouse.EReprovisionRefused: {http.StatusForbidden, 403005},
	gatehouse.EWebhookDenied:      {http.StatusForbidden, 403006},
	gatehouse.EQuotaExceeded:      {http.StatusForbidden, 403007},
	gatehouse.ECredentialDenied:   {http.StatusForbidden, 403008},

	gatehouse.ENotFound:           {http.StatusNotFound, 404201},
	gatehouse.EMethodNotAllowed:   {http.StatusMethodNotAllowed, 405001},
	gatehouse.EConflict:           {http.StatusConflict, 409001},
	gatehouse.EPreconditionFailed: {http.StatusPreconditionFailed, 412002},
	gatehouse.ERateLimited:        {http.StatusTooManyRequests, 429001},
	gatehouse.EInternal:           {http.StatusInternalServerError, 500000},
	gatehouse.EWebhookFailed:      {http.StatusServiceUnavailable, 503000},
	gatehouse.EUnavailable:        {http.StatusServiceUnavailable, 503000},
}

// dpsOpaque is the message of every 401: it never says whether the scope,
// the registration ID or the proof was wrong.
const dpsOpaque = "authentication failed: send a valid SAS token (Authorization: SharedAccessSignature ...) or a client certificate chain enrolled in this ID scope"

type dps struct{}

func (dps) name() string { return "dps" }

// dpsErrorBody is the body of a DPS error response.
type dpsErrorBody struct {
	ErrorCode    int    `json:"errorCode"`
	TrackingID   string `json:"trackingId"`
	Message      string `json:"message"`
	TimestampUTC string `json:"timestampUtc"`
}

func (d dps) writeError(h *handler, w http.ResponseWriter, r *http.Request, err error) {
	code, msg := gatehouse.ErrorCode(err), gatehouse.ErrorMessage(err)
	e, known := dpsErrors[code]
	tracking := newTrackingID()
	h.logFailure(r, d, code, known, err, "tracking_id", tracking)
	if !known {
		e, msg = dpsErrors[gatehouse.EInternal], gatehouse.ErrorMessage(err)
	}
	switch e.status {
	case http.StatusUnauthorized:
		msg = dpsOpaque
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", retryAfterSeconds(err, 1))
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfterSeconds(err, 5))
	case http.StatusInternalServerError:
		msg = "internal error; the server log has the details (trackingId " + tracking + ")"
	}
	writeJSON(w, e.status, dpsErrorBody{ErrorCode: e.code, TrackingID: tracking, Message: msg,
		TimestampUTC: h.now().UTC().Format(time.RFC3339Nano)})
}

// dpsRegisterBody is the body of a DPS registration request. Members DPS
// knows and Gatehouse does not (capabilities, ...) are ignored, as DPS
// ignores unknown members.
type dpsRegisterBody struct {
	RegistrationID *string         `json:"registrationId"`
	Payload        json.RawMessage `json:"payload"`
	CSR            *string         `json:"csr"`
	TPM            json.RawMessage `json:"tpm"`
}

// dpsRegistration is what a DPS registration body asks for, decoded.
type dpsRegistration struct {
	Payload json.RawMessage
	CSR     []byte // PEM or DER
}

// decodeDPSBody decodes and checks a registration body for the
// registration ID in the path. An empty body is an empty object.
func decodeDPSBody(body []byte, registrationID string) (*dpsRegistration, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return &dpsRegistration{}, nil
	}
	var in dpsRegisterBody
	if body[0] != '{' {
		return nil, gatehouse.Errorf(gatehouse.EInvalidJSON, "the body must be a JSON object")
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, gatehouse.Errorf(gatehouse.EInvalidJSON, "the body is not a valid registration request: %s", jsonProblem(err))
	}
	if in.RegistrationID != nil && *in.RegistrationID != registrationID {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "registrationId in the body must equal the one in the path")
	}
	if len(in.TPM) > 0 && !bytes.Equal(in.TPM, []byte("null")) {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "TPM attestation is not supported; use a symmetric key (SAS) or an X.509 certificate")
	}
	out := &dpsRegistration{}
	if len(in.Payload) > 0 && !bytes.Equal(in.Payload, []byte("null")) {
		out.Payload = in.Payload
	}
	if in.CSR != nil {
		csr, err := decodeCSRText(*in.CSR)
		if err != nil {
			return nil, err
		}
		out.CSR = csr
	}
	return out, nil
}

// decodeCSRText turns a CSR sent as a JSON string into PEM or DER bytes
// for the core to parse: PEM as is, anything else as base64 of DER
// (whitespace and missing padding tolerated).
func decodeCSRText(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "csr is empty; send the base64 of a DER PKCS #10 request, or PEM")
	}
	if strings.HasPrefix(s, "-----BEGIN") {
		return []byte(s), nil
	}
	der, err := decodeBase64([]byte(s))
	if err != nil {
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "csr is neither PEM nor base64; send the base64 of a DER PKCS #10 request, or PEM")
	}
	return der, nil
}

// decodeBase64 decodes standard base64 with any whitespace (line breaks
// included) and with or without padding.
func decodeBase64(b []byte) ([]byte, error) {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			clean = append(clean, c)
		}
	}
	if len(clean) == 0 {
		return nil, base64.CorruptInputError(0)
	}
	enc := base64.StdEncoding
	if clean[len(clean)-1] != '=' {
		enc = base64.RawStdEncoding
	}
	out := make([]byte, enc.DecodedLen(len(clean)))
	n, err := enc.Decode(out, clean)
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}

// jsonProblem says what is wrong with a JSON document without echoing it.
func jsonProblem(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return "syntax error at byte " + strconv.FormatInt(e.Offset, 10)
	case *json.UnmarshalTypeError:
		if e.Field != "" {
			return "member " + strconv.Quote(e.Field) + " must not be a JSON " + e.Value
		}
		return "unexpected JSON " + e.Value
	}
	return "malformed JSON"
}

// dpsRequest builds the core's request from the path, the query and the
// credentials: a SAS token in Authorization, else the TLS client chain.
func dpsRequest(r *http.Request) (provision.Request, error) {
	req := provision.Request{Scope: r.PathValue("scope"), RegistrationID: r.PathValue("registrationId"), Dialect: "dps", Source: sourceOf(r)}
	q := r.URL.Query()
	if v := q.Get("api-version"); !dpsAPIVersions[v] {
		return req, gatehouse.Errorf(gatehouse.EInvalid, "api-version must be 2019-03-31 or 2021-06-01")
	}
	if v := q.Get("forceRegistration"); v != "" {
		force, err := strconv.ParseBool(v)
		if err != nil {
			return req, gatehouse.Errorf(gatehouse.EInvalid, "forceRegistration must be true or false")
		}
		req.Force = force
	}
	if authz := r.Header.Get("Authorization"); authz != "" {
		if !hasSchemePrefix(authz, "SharedAccessSignature") {
			return req, gatehouse.Errorf(gatehouse.EUnauthenticated, "unsupported Authorization scheme")
		}
		req.SAS = authz
	} else if chain := peerChain(r); chain != nil {
		req.Chain = chain
	} else {
		return req, gatehouse.Errorf(gatehouse.EUnauthenticated, "no credentials")
	}
	return req, nil
}

// hasSchemePrefix reports whether an Authorization value uses scheme
// (case-insensitively), followed by a space.
func hasSchemePrefix(authz, scheme string) bool {
	return len(authz) > len(scheme) && strings.EqualFold(authz[:len(scheme)], scheme) && (authz[len(scheme)] == ' ' || authz[len(scheme)] == '\t')
}

// dpsOperationStatus is the answer to a registration or a poll.
type dpsOperationStatus struct {
	OperationID       string                `json:"operationId"`
	Status            string                `json:"status"`
	RegistrationState *dpsRegistrationState `json:"registrationState,omitempty"`
}

// dpsRegistrationState is DPS's DeviceRegistrationResult.
type dpsRegistrationState struct {
	RegistrationID         string          `json:"registrationId"`
	CreatedDateTimeUTC     string          `json:"createdDateTimeUtc,omitempty"`
	AssignedHub            string          `json:"assignedHub,omitempty"`
	DeviceID               string          `json:"deviceId,omitempty"`
	Status                 string          `json:"status"`
	Substatus              string          `json:"substatus,omitempty"`
	ErrorCode              int             `json:"errorCode,omitempty"`
	ErrorMessage           string          `json:"errorMessage,omitempty"`
	LastUpdatedDateTimeUTC string          `json:"lastUpdatedDateTimeUtc,omitempty"`
	ETag                   string          `json:"etag,omitempty"`
	Payload                json.RawMessage `json:"payload,omitempty"`
	IssuedCertificateChain []string        `json:"issuedCertificateChain,omitempty"`
}

// dpsRegister handles PUT /{scope}/registrations/{registrationId}/register.
// The registration is committed before the answer, so the answer is the
// final state (200, status "assigned", the registration state), which the
// DPS SDKs accept in place of a 202 "assigning" and a poll: the device is
// done in one round trip instead of waiting a Retry-After. The operation
// can still be polled.
func (h *handler) dpsRegister(w http.ResponseWriter, r *http.Request) error {
	req, err := dpsRequest(r)
	if err != nil {
		return err
	}
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	in, err := decodeDPSBody(body, req.RegistrationID)
	if err != nil {
		return err
	}
	req.Payload, req.CSR = in.Payload, in.CSR
	res, err := h.p.Register(r.Context(), req)
	if err != nil {
		return err
	}
	op := res.Registration.OperationID
	e := issuedEntry{operationID: op, payload: res.Payload, at: h.now()}
	if res.Certificate != nil {
		e.chain = append(e.chain, res.Certificate)
		for _, c := range res.Chain {
			e.chain = append(e.chain, c.Raw)
		}
	}
	if e.chain != nil || e.payload != nil {
		h.issued.put(req.Scope+"/"+req.RegistrationID, e)
	}
	reg := res.Registration
	writeJSON(w, http.StatusOK, dpsOperationStatus{OperationID: op, Status: string(reg.Status), RegistrationState: dpsState(reg, e)})
	return nil
}

// dpsState is a registration's state as DPS answers it, with what the
// registration produced (certificate chain, custom allocation payload) if
// it is assigned.
func dpsState(reg *gatehouse.Registration, e issuedEntry) *dpsRegistrationState {
	st := &dpsRegistrationState{
		RegistrationID: reg.RegistrationID, AssignedHub: reg.AssignedHub, DeviceID: reg.DeviceID,
		Status: string(reg.Status), Substatus: reg.Substatus, ETag: reg.ETag,
		CreatedDateTimeUTC: dpsTime(reg.CreatedAt), LastUpdatedDateTimeUTC: dpsTime(reg.UpdatedAt),
	}
	if reg.ErrorCode != "" {
		de, ok := dpsErrors[reg.ErrorCode]
		if !ok {
			de = dpsErrors[gatehouse.EInternal]
		}
		st.ErrorCode, st.ErrorMessage = de.code, reg.ErrorMessage
		if de.status == http.StatusUnauthorized {
			st.ErrorMessage = dpsOpaque
		}
	}
	if reg.Status == gatehouse.RegAssigned {
		st.Payload = e.payload
		for _, der := range e.chain {
			st.IssuedCertificateChain = append(st.IssuedCertificateChain, base64.StdEncoding.EncodeToString(der))
		}
	}
	return st
}

// dpsOperation handles GET .../operations/{operationId}: the device proves
// itself again and gets its registration state.
func (h *handler) dpsOperation(w http.ResponseWriter, r *http.Request) error {
	req, err := dpsRequest(r)
	if err != nil {
		return err
	}
	op := r.PathValue("operationId")
	reg, _, err := h.p.Operation(r.Context(), req, op)
	if err != nil {
		return err
	}
	var e issuedEntry
	if reg.Status == gatehouse.RegAssigned {
		var ok bool
		if e, ok = h.issued.get(req.Scope+"/"+req.RegistrationID, reg.OperationID, h.now()); !ok {
			// The registration ran on another node (or before a restart):
			// the certificate is in the registry. A custom allocation's
			// payload is not kept there.
			chain, err := h.p.IssuedChain(r.Context(), reg)
			if err != nil {
				return err
			}
			e.chain = chain
		}
	}
	st := dpsState(reg, e)
	status := http.StatusOK
	if reg.Status == gatehouse.RegAssigning {
		w.Header().Set("Retry-After", "1")
		status = http.StatusAccepted
	}
	writeJSON(w, status, dpsOperationStatus{OperationID: reg.OperationID, Status: string(reg.Status), RegistrationState: st})
	return nil
}

func dpsTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
