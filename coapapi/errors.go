package coapapi

import (
	"bytes"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/provision"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Codes of CoAP's own negotiation, which the core never sees.
const (
	eNotAcceptable = "not_acceptable" // no representation in the Accept option's format
	eBadOption     = "bad_option"     // an unrecognised critical option
)

// coapCode is the CoAP front end's one error table: Gatehouse code to CoAP
// response code. Codes missing here are answered 5.00 and logged.
var coapCode = map[string]codes.Code{
	gatehouse.EInvalid:           codes.BadRequest,
	gatehouse.EInvalidID:         codes.BadRequest,
	gatehouse.EInvalidJSON:       codes.BadRequest,
	gatehouse.EUnknownField:      codes.BadRequest,
	gatehouse.EInvalidCursor:     codes.BadRequest,
	gatehouse.EInvalidSelector:   codes.BadRequest,
	gatehouse.EInvalidTransition: codes.BadRequest,
	gatehouse.ETooLarge:          codes.BadRequest,
	gatehouse.ECSRInvalid:        codes.BadRequest,
	gatehouse.EUnsupportedKey:    codes.BadRequest,
	gatehouse.EInvalidPEM:        codes.BadRequest,

	gatehouse.EUnauthenticated:    codes.Unauthorized,
	gatehouse.EAttestationFailed:  codes.Unauthorized,
	gatehouse.EEnrollmentNotFound: codes.Unauthorized,

	gatehouse.EForbidden:          codes.Forbidden,
	gatehouse.EEnrollmentDisabled: codes.Forbidden,
	gatehouse.EEnrollmentExpired:  codes.Forbidden,
	gatehouse.EDeviceDisabled:     codes.Forbidden,
	gatehouse.EDeviceQuarantined:  codes.Forbidden,
	gatehouse.EReprovisionRefused: codes.Forbidden,
	gatehouse.EWebhookDenied:      codes.Forbidden,
	gatehouse.EQuotaExceeded:      codes.Forbidden,
	gatehouse.ECredentialDenied:   codes.Forbidden,
	gatehouse.EAlreadyRevoked:     codes.Forbidden,

	gatehouse.ENotFound:           codes.NotFound,
	gatehouse.EMethodNotAllowed:   codes.MethodNotAllowed,
	gatehouse.EConflict:           codes.Conflict,
	gatehouse.EPreconditionFailed: codes.PreconditionFailed,
	gatehouse.EBodyTooLarge:       codes.RequestEntityTooLarge,
	gatehouse.EUnsupportedMedia:   codes.UnsupportedMediaType,
	gatehouse.ERateLimited:        codes.TooManyRequests,

	eNotAcceptable: codes.NotAcceptable,
	eBadOption:     codes.BadOption,

	gatehouse.EInternal:      codes.InternalServerError,
	gatehouse.EWebhookFailed: codes.ServiceUnavailable,
	gatehouse.EUnavailable:   codes.ServiceUnavailable,
}

// opaqueUnauthorized is the diagnostic of every 4.01: a device (or a prober)
// learns nothing about which part of its proof failed.
const opaqueUnauthorized = "unauthenticated: use DTLS with a PSK identity {scope}/{registrationId} and the device key, or a certificate enrolled in the scope"

// response is what an error becomes: a code, a diagnostic payload (RFC 7252
// section 5.5.2: UTF-8 text, no Content-Format) and, for 4.29 and 5.03,
// how many seconds to wait (Max-Age, RFC 8516).
type response struct {
	code   codes.Code
	diag   string
	maxAge uint32
	known  bool
}

func errorResponse(err error) response {
	code, msg := gatehouse.ErrorCode(err), gatehouse.ErrorMessage(err)
	c, known := coapCode[code]
	if !known {
		c = codes.InternalServerError
	}
	r := response{code: c, diag: code + ": " + msg, known: known}
	switch c {
	case codes.Unauthorized:
		r.diag = opaqueUnauthorized
	case codes.TooManyRequests:
		r.maxAge = seconds(provision.RetryAfter(err), 1)
	case codes.ServiceUnavailable:
		r.maxAge = seconds(provision.RetryAfter(err), 5)
	case codes.InternalServerError:
		r.diag = "internal: internal error; the server log has the details"
	}
	return r
}

func seconds(d time.Duration, min uint32) uint32 {
	s := uint32((d + time.Second - 1) / time.Second)
	if s < min {
		return min
	}
	return s
}

// write sets r as the response of w.
func (r response) write(w responseWriter) error {
	if err := w.SetResponse(r.code, message.TextPlain, bytes.NewReader([]byte(r.diag))); err != nil {
		return err
	}
	// A diagnostic payload carries no Content-Format.
	w.Message().Remove(message.ContentFormat)
	if r.maxAge > 0 {
		w.Message().SetOptionUint32(message.MaxAge, r.maxAge)
	}
	return nil
}
