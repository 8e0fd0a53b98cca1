package gatehouse

import (
	"errors"
	"fmt"
)

// Error codes. Every error that reaches a client carries one of these; each
// front end (HTTP, MQTT, CoAP) owns one table mapping them to its protocol.
// The generic codes come first, then the specific ones that tell a client
// exactly what to fix.
const (
	EInvalid            = "invalid"             // a request is malformed in a way no specific code names
	ENotFound           = "not_found"           // the thing does not exist, or the caller may not know it does
	EConflict           = "conflict"            // the thing already exists, or its state forbids the change
	EUnauthenticated    = "unauthenticated"     // no or bad credentials
	EForbidden          = "forbidden"           // credentials are fine, the role is not enough
	EPreconditionFailed = "precondition_failed" // If-Match / etag mismatch
	ERateLimited        = "rate_limited"
	EInternal           = "internal"
	EUnavailable        = "unavailable" // a dependency (the database) is unreachable

	EInvalidID         = "invalid_id"
	EInvalidJSON       = "invalid_json"
	EUnknownField      = "unknown_field"
	EInvalidCursor     = "invalid_cursor"
	EInvalidSelector   = "invalid_selector"
	EInvalidTransition = "invalid_transition"
	ETooLarge          = "too_large"      // a field exceeds its size limit
	EBodyTooLarge      = "body_too_large" // the request body exceeds the server's cap
	EUnsupportedMedia  = "unsupported_media_type"
	EMethodNotAllowed  = "method_not_allowed"
)

// Error is Gatehouse's one error type. Code is stable and machine-readable;
// Message is safe to show to the caller and says what to do about it. Internal
// causes never go into Message: wrap them instead, and they stay in logs.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or EInternal
// for any other error, so that an unexpected failure never leaks its details.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the user-safe message of err: the message of the first
// *Error in its chain, or a generic text for anything else.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error; the server log has the details"
}
