package attest

import (
	"errors"

	"github.com/gatehouse-iot/gatehouse"
)

// Reasons an attestation failed, as returned by Reason. They are for logs
// and metrics; never send them to a device.
const (
	ReasonMalformed     = "malformed"      // the token or certificate cannot be parsed or is out of bounds
	ReasonBadSignature  = "bad_signature"  // no key (or CA) produced this signature
	ReasonExpired       = "expired"        // the token or a certificate has expired
	ReasonNotYetValid   = "not_yet_valid"  // a certificate is not valid yet
	ReasonLifetime      = "lifetime"       // the token lives longer than the caller allows
	ReasonWrongResource = "wrong_resource" // the token names another scope or registration
	ReasonUntrusted     = "untrusted"      // the chain does not lead to the anchor, or its key usage forbids client auth
	ReasonInvalidID     = "invalid_id"     // the certificate's CN is not a valid registration ID
	ReasonWrongCode     = "wrong_code"     // a proof of possession names another verification code
)

// deviceMessage is the only thing a device learns about a failure.
const deviceMessage = "attestation failed"

// failure is an attestation error: a user-safe *gatehouse.Error (what
// Unwrap returns, so gatehouse.ErrorCode and ErrorMessage find it), plus a
// reason and a detail for the log.
type failure struct {
	reason string
	detail string
	public *gatehouse.Error
}

func (f *failure) Error() string {
	s := "attestation failed: " + f.reason
	if f.detail != "" {
		s += ": " + f.detail
	}
	return s
}

func (f *failure) Unwrap() error { return f.public }

// fail returns a device-facing failure: its public message is always the
// same, whatever the reason.
func fail(reason, detail string) error {
	return &failure{
		reason: reason,
		detail: detail,
		public: &gatehouse.Error{Code: gatehouse.EAttestationFailed, Message: deviceMessage},
	}
}

// failOperator returns a failure whose public message explains it, for
// errors only an operator sees.
func failOperator(reason, message string) error {
	return &failure{
		reason: reason,
		detail: message,
		public: &gatehouse.Error{Code: gatehouse.EAttestationFailed, Message: message},
	}
}

// Reason returns why an attestation failed (one of the Reason constants),
// "" for a nil error or an error that did not come from this package. It is
// for logs and metrics: never send it to a device.
func Reason(err error) string {
	var f *failure
	if errors.As(err, &f) {
		return f.reason
	}
	return ""
}
