// Package dpswire is the Azure DPS device protocol's wire format, which
// its two dialects share: HTTPS (package devicehttp) and MQTT (package
// mqttapi). It holds the one error table (gatehouse error code to status
// and DPS errorCode), the error body, and the operation status with the
// registration state. Pure: it sends nothing.
package dpswire

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// Status is how DPS answers one gatehouse error code: the HTTP status (the
// status in the MQTT response topic) and the numeric errorCode of the body.
type Status struct {
	HTTP int
	Code int
}

// errors is the one error table. Codes missing here are answered as
// internal errors (see Error). devicehttp's package documentation has the
// same table in prose.
var errors = map[string]Status{
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
	// (or scope) from a wrong key: the dialects give every 401 one message.
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

// Error returns how DPS answers a gatehouse error code, and whether the
// table knows it; an unknown code is answered as an internal error.
func Error(code string) (s Status, known bool) {
	if s, known = errors[code]; !known {
		s = errors[gatehouse.EInternal]
	}
	return s, known
}

// ErrorBody is the body of a DPS error answer.
type ErrorBody struct {
	ErrorCode    int    `json:"errorCode"`
	TrackingID   string `json:"trackingId"`
	Message      string `json:"message"`
	TimestampUTC string `json:"timestampUtc"`
}

// OperationStatus is the answer to a registration or to a poll of its
// operation.
type OperationStatus struct {
	OperationID       string             `json:"operationId"`
	Status            string             `json:"status"`
	RegistrationState *RegistrationState `json:"registrationState,omitempty"`
}

// RegistrationState is DPS's DeviceRegistrationResult.
type RegistrationState struct {
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

// State is a registration's state as DPS answers it. A failed one carries
// its DPS errorCode, and its message unless it is a 401 (then opaque, the
// dialect's one message for every 401). An assigned one carries what the
// registration produced: the custom allocation's payload and the issued
// certificate chain (base64 DER, leaf first).
func State(reg *gatehouse.Registration, opaque string, payload json.RawMessage, chain []string) *RegistrationState {
	st := &RegistrationState{
		RegistrationID: reg.RegistrationID, AssignedHub: reg.AssignedHub, DeviceID: reg.DeviceID,
		Status: string(reg.Status), Substatus: reg.Substatus, ETag: reg.ETag,
		CreatedDateTimeUTC: Time(reg.CreatedAt), LastUpdatedDateTimeUTC: Time(reg.UpdatedAt),
	}
	if reg.ErrorCode != "" {
		e, _ := Error(reg.ErrorCode)
		st.ErrorCode, st.ErrorMessage = e.Code, reg.ErrorMessage
		if e.HTTP == http.StatusUnauthorized {
			st.ErrorMessage = opaque
		}
	}
	if reg.Status == gatehouse.RegAssigned {
		st.Payload, st.IssuedCertificateChain = payload, chain
	}
	return st
}

// Time is a time as DPS writes it: RFC 3339 in UTC, empty if unset.
func Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
