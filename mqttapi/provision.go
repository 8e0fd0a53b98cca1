package mqttapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/dpswire"
	"github.com/gatehouse-iot/gatehouse/provision"
)

// provisionTimeout bounds one provisioning request (webhooks included).
const provisionTimeout = 60 * time.Second

// maxProvisionPayload caps a provisioning request body.
const maxProvisionPayload = 32 << 10

// startRequest runs a provisioning request in the background, one at a
// time per session: a session that sends another while one runs is told
// to retry.
func (b *Broker) startRequest(s *session, rid string, run func(ctx context.Context)) {
	if !s.prov.busy.CompareAndSwap(false, true) {
		err := gatehouse.Errorf(gatehouse.ERateLimited, "a request of this connection is still running; retry after 1 s")
		if s.kind == kindDPS {
			b.dpsError(context.Background(), s, rid, &provision.RetryError{Err: err, After: time.Second})
		} else {
			b.nativeError(context.Background(), s, rid, &provision.RetryError{Err: err, After: time.Second})
		}
		return
	}
	go func() {
		var once sync.Once
		finish := func() { once.Do(func() { s.prov.busy.Store(false) }) }
		defer finish()
		ctx, cancel := context.WithTimeout(context.Background(), provisionTimeout)
		defer cancel()
		// The session may send its next request as soon as it has the
		// answer: the request counts as finished before it is answered
		// (once: a later request's flag is not cleared).
		run(context.WithValue(ctx, requestFinishKey{}, finish))
	}()
}

type requestFinishKey struct{}

// respond publishes an answer to the session that asked; an answer to the
// running request (ctx from startRequest) ends it first.
func (b *Broker) respond(ctx context.Context, s *session, topic string, body any) {
	if finish, ok := ctx.Value(requestFinishKey{}).(func()); ok {
		finish()
	}
	raw, err := json.Marshal(body)
	if err != nil {
		b.log.Error("mqtt: encode response", "err", err)
		return
	}
	b.publish(s.mount+topic, raw, false)
}

// DPS ---------------------------------------------------------------------

// dpsOpaque is the message of every 401.
const dpsOpaque = "authentication failed: send a valid SAS token or a client certificate chain enrolled in this ID scope"

type dpsRegisterBody struct {
	RegistrationID *string         `json:"registrationId"`
	Payload        json.RawMessage `json:"payload"`
	CSR            *string         `json:"csr"`
	TPM            json.RawMessage `json:"tpm"`
}

// issuedEntry is what a registration produced that the poll answer
// carries (the registry keeps no certificate bodies for operations).
type issuedEntry struct {
	chain   []string // base64 DER, leaf first
	payload json.RawMessage
}

// decodeDPSRegisterBody decodes a DPS registration body for a
// registration ID. An empty body is an empty object.
func decodeDPSRegisterBody(body []byte, registrationID string) (payload json.RawMessage, csr []byte, err error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, nil, nil
	}
	if len(body) > maxProvisionPayload {
		return nil, nil, gatehouse.Errorf(gatehouse.ETooLarge, "the request is larger than %d bytes", maxProvisionPayload)
	}
	if body[0] != '{' {
		return nil, nil, gatehouse.Errorf(gatehouse.EInvalidJSON, "the body must be a JSON object")
	}
	var in dpsRegisterBody
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, nil, gatehouse.Errorf(gatehouse.EInvalidJSON, "the body is not a valid registration request")
	}
	if in.RegistrationID != nil && *in.RegistrationID != registrationID {
		return nil, nil, gatehouse.Errorf(gatehouse.EInvalid, "registrationId in the body must equal the one in the username")
	}
	if len(in.TPM) > 0 && string(in.TPM) != "null" {
		return nil, nil, gatehouse.Errorf(gatehouse.EInvalid, "TPM attestation is not supported; use a symmetric key (SAS) or an X.509 certificate")
	}
	if len(in.Payload) > 0 && string(in.Payload) != "null" {
		payload = in.Payload
	}
	if in.CSR != nil {
		if csr, err = decodeCSRText(*in.CSR); err != nil {
			return nil, nil, err
		}
	}
	return payload, csr, nil
}

// decodeCSRText accepts PEM, or base64 of DER (whitespace tolerated).
func decodeCSRText(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		return []byte(s), nil
	}
	clean := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, s)
	der, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		der, err = base64.RawStdEncoding.DecodeString(clean)
	}
	if err != nil || len(der) == 0 {
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "csr is neither PEM nor base64 of DER")
	}
	return der, nil
}

func (b *Broker) handleDPS(ctx context.Context, s *session, t dpsTopic, body []byte) {
	switch t.kind {
	case dpsRegister:
		payload, csr, err := decodeDPSRegisterBody(body, s.id)
		if err != nil {
			b.dpsError(ctx, s, t.rid, err)
			return
		}
		req := s.prov.req
		req.Payload, req.CSR = payload, csr
		res, err := b.prov.Register(ctx, req)
		if err != nil {
			b.dpsError(ctx, s, t.rid, err)
			return
		}
		e := &issuedEntry{payload: res.Payload}
		if res.Certificate != nil {
			e.chain = append(e.chain, base64.StdEncoding.EncodeToString(res.Certificate))
			for _, c := range res.Chain {
				e.chain = append(e.chain, base64.StdEncoding.EncodeToString(c.Raw))
			}
		}
		reg := res.Registration
		s.prov.issued.Clear() // one registration per connection is remembered
		s.prov.issued.Store(reg.OperationID, e)
		// The registration is committed: the answer is its final state
		// (200, "assigned"), which the DPS SDKs accept in place of a 202
		// "assigning" and a poll. The operation can still be polled.
		b.respond(ctx, s, dpsResponseTopic(200, t.rid, 0), dpswire.OperationStatus{OperationID: reg.OperationID, Status: string(reg.Status),
			RegistrationState: dpsState(reg, e)})
	case dpsPoll:
		reg, _, err := b.prov.Operation(ctx, s.prov.req, t.operationID)
		if err != nil {
			b.dpsError(ctx, s, t.rid, err)
			return
		}
		var e *issuedEntry
		if v, ok := s.prov.issued.Load(reg.OperationID); ok {
			e = v.(*issuedEntry)
		}
		st := dpsState(reg, e)
		status, retry := 200, 0
		if reg.Status == gatehouse.RegAssigning {
			status, retry = 202, 1
		}
		b.respond(ctx, s, dpsResponseTopic(status, t.rid, retry), dpswire.OperationStatus{OperationID: reg.OperationID, Status: string(reg.Status), RegistrationState: st})
	}
}

// dpsState is a registration's state as DPS answers it, with what the
// registration produced (e; nil if this connection did not register) if it
// is assigned.
func dpsState(reg *gatehouse.Registration, e *issuedEntry) *dpswire.RegistrationState {
	if e == nil {
		e = &issuedEntry{}
	}
	return dpswire.State(reg, dpsOpaque, e.payload, e.chain)
}

func (b *Broker) dpsError(ctx context.Context, s *session, rid string, err error) {
	code, msg := gatehouse.ErrorCode(err), gatehouse.ErrorMessage(err)
	e, known := dpswire.Error(code)
	tracking := newTrackingID()
	if !known || e.HTTP >= 500 {
		b.log.Error("mqtt: dps request failed", "scope", s.scope, "device_id", s.id, "tracking_id", tracking, "err", err)
	}
	retry := 0
	switch e.HTTP {
	case 401:
		msg = dpsOpaque
	case 429:
		retry = retrySeconds(err, 1)
	case 503:
		retry = retrySeconds(err, 5)
	case 500:
		msg = "internal error; the server log has the details (trackingId " + tracking + ")"
	}
	b.respond(ctx, s, dpsResponseTopic(e.HTTP, rid, retry), dpswire.ErrorBody{ErrorCode: e.Code, TrackingID: tracking, Message: msg,
		TimestampUTC: time.Now().UTC().Format(time.RFC3339Nano)})
}

func retrySeconds(err error, def int) int {
	if d := provision.RetryAfter(err); d > 0 {
		return int(d.Seconds() + 0.5)
	}
	return def
}

func newTrackingID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Native ------------------------------------------------------------------

// NativeRequest is the body of a native provisioning request, published on
// gatehouse/provision/{rid}/req.
type NativeRequest struct {
	CSR     string          `json:"csr,omitempty"` // PEM, or base64 of DER
	Payload json.RawMessage `json:"payload,omitempty"`
	Force   bool            `json:"forceRegistration,omitempty"`
}

// NativeResponse is the answer, on gatehouse/provision/{rid}/res.
type NativeResponse struct {
	Status         string          `json:"status"` // assigned | failed
	Scope          string          `json:"scope,omitempty"`
	RegistrationID string          `json:"registrationId,omitempty"`
	DeviceID       string          `json:"deviceId,omitempty"`
	AssignedHub    string          `json:"assignedHub,omitempty"`
	Substatus      string          `json:"substatus,omitempty"`
	Certificate    string          `json:"certificate,omitempty"` // PEM of the issued certificate
	Chain          string          `json:"chain,omitempty"`       // PEM of the issuing CA through the root
	Config         json.RawMessage `json:"config,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	Error          *NativeError    `json:"error,omitempty"`
}

// NativeError says why a native request failed.
type NativeError struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	RetryAfter int    `json:"retryAfter,omitempty"` // seconds
}

func decodeNativeRequest(body []byte) (*NativeRequest, error) {
	if len(body) > maxProvisionPayload {
		return nil, gatehouse.Errorf(gatehouse.ETooLarge, "the request is larger than %d bytes", maxProvisionPayload)
	}
	body = bytes.TrimSpace(body)
	var in NativeRequest
	if len(body) == 0 {
		return &in, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || dec.More() {
		return nil, gatehouse.Errorf(gatehouse.EInvalidJSON, "the request must be a JSON object with csr, payload and forceRegistration")
	}
	if string(in.Payload) == "null" {
		in.Payload = nil
	}
	return &in, nil
}

func (b *Broker) handleNative(ctx context.Context, s *session, rid string, body []byte) {
	in, err := decodeNativeRequest(body)
	if err != nil {
		b.nativeError(ctx, s, rid, err)
		return
	}
	req := s.prov.req
	req.Payload, req.Force = in.Payload, in.Force
	if in.CSR != "" {
		if req.CSR, err = decodeCSRText(in.CSR); err != nil {
			b.nativeError(ctx, s, rid, err)
			return
		}
	}
	res, err := b.prov.Register(ctx, req)
	if err != nil {
		b.nativeError(ctx, s, rid, err)
		return
	}
	out := NativeResponse{Status: string(res.Registration.Status), Scope: s.scope, RegistrationID: s.id,
		DeviceID: res.Registration.DeviceID, AssignedHub: res.AssignedHub, Substatus: res.Registration.Substatus, Payload: res.Payload}
	if res.Device != nil && len(res.Device.Config) > 0 && string(res.Device.Config) != "null" {
		out.Config = res.Device.Config
	}
	if res.Certificate != nil {
		out.Certificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: res.Certificate}))
		var chain []byte
		for _, c := range res.Chain {
			chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		out.Chain = string(chain)
	}
	b.respond(ctx, s, nativeResponseTopic(rid), out)
}

func (b *Broker) nativeError(ctx context.Context, s *session, rid string, err error) {
	code := gatehouse.ErrorCode(err)
	msg := gatehouse.ErrorMessage(err)
	switch code {
	case gatehouse.EInternal:
		b.log.Error("mqtt: native provisioning failed", "scope", s.scope, "device_id", s.id, "err", err)
		msg = "internal error; the server log has the details"
	case gatehouse.EAttestationFailed, gatehouse.EEnrollmentNotFound, gatehouse.EUnauthenticated:
		code, msg = gatehouse.EUnauthenticated, "attestation failed"
	}
	b.respond(ctx, s, nativeResponseTopic(rid), NativeResponse{Status: string(gatehouse.RegFailed),
		Error: &NativeError{Code: code, Message: msg, RetryAfter: int(provision.RetryAfter(err).Seconds() + 0.5)}})
}
