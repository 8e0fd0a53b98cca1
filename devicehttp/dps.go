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
	"github.com/gatehouse-iot/gatehouse/dpswire"
	"github.com/gatehouse-iot/gatehouse/provision"
)

// DPS API versions the Azure device SDKs send.
var dpsAPIVersions = map[string]bool{"2019-03-31": true, "2021-06-01": true}

// dpsOpaque is the message of every 401: it never says whether the scope,
// the registration ID or the proof was wrong.
const dpsOpaque = "authentication failed: send a valid SAS token (Authorization: SharedAccessSignature ...) or a client certificate chain enrolled in this ID scope"

type dps struct{}

func (dps) name() string { return "dps" }

func (d dps) writeError(h *handler, w http.ResponseWriter, r *http.Request, err error) {
	code, msg := gatehouse.ErrorCode(err), gatehouse.ErrorMessage(err)
	e, known := dpswire.Error(code)
	tracking := newTrackingID()
	h.logFailure(r, d, code, known, err, "tracking_id", tracking)
	switch e.HTTP {
	case http.StatusUnauthorized:
		msg = dpsOpaque
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", retryAfterSeconds(err, 1))
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfterSeconds(err, 5))
	case http.StatusInternalServerError:
		msg = "internal error; the server log has the details (trackingId " + tracking + ")"
	}
	writeJSON(w, e.HTTP, dpswire.ErrorBody{ErrorCode: e.Code, TrackingID: tracking, Message: msg,
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
	writeJSON(w, http.StatusOK, dpswire.OperationStatus{OperationID: op, Status: string(reg.Status), RegistrationState: dpsState(reg, e)})
	return nil
}

// dpsState is a registration's state as DPS answers it, with what the
// registration produced (e) if it is assigned.
func dpsState(reg *gatehouse.Registration, e issuedEntry) *dpswire.RegistrationState {
	var chain []string
	for _, der := range e.chain {
		chain = append(chain, base64.StdEncoding.EncodeToString(der))
	}
	return dpswire.State(reg, dpsOpaque, e.payload, chain)
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
	writeJSON(w, status, dpswire.OperationStatus{OperationID: reg.OperationID, Status: string(reg.Status), RegistrationState: st})
	return nil
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
