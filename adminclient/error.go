package adminclient

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
)

// APIError is an error response from the server. Code is one of the
// gatehouse error codes; Message is the server's explanation (the problem
// document's detail), safe to show to a user.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
}

// Unwrap returns the equivalent *gatehouse.Error, so that errors.As and
// gatehouse.ErrorCode see the server's code.
func (e *APIError) Unwrap() error {
	return &gatehouse.Error{Code: e.Code, Message: e.Message}
}

// problem is an application/problem+json body (RFC 9457) with Gatehouse's
// code extension member.
type problem struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Status int    `json:"status"`
	Title  string `json:"title"`
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// apiError builds an *APIError from a non-2xx response body. Bodies that
// are not problem documents (a proxy's HTML page, say) still yield an
// error with a code derived from the status.
func apiError(status int, contentType string, body []byte) *APIError {
	e := &APIError{Status: status}
	var p problem
	if isJSON(contentType) && json.Unmarshal(body, &p) == nil && p.Code != "" {
		e.Code, e.Message = p.Code, p.Detail
		if e.Message == "" {
			e.Message = p.Title
		}
	}
	if e.Code == "" {
		e.Code = codeForStatus(status)
	}
	if e.Message == "" {
		e.Message = "HTTP " + http.StatusText(status)
		if s := strings.TrimSpace(string(body)); s != "" && !isJSON(contentType) && len(s) < 200 && !strings.ContainsAny(s, "<>") {
			e.Message += ": " + s
		}
	}
	return e
}

func isJSON(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	ct = strings.TrimSpace(strings.ToLower(ct))
	return ct == "application/json" || ct == "application/problem+json"
}

// codeForStatus guesses a code for an error response without one.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return gatehouse.EInvalid
	case http.StatusUnauthorized:
		return gatehouse.EUnauthenticated
	case http.StatusForbidden:
		return gatehouse.EForbidden
	case http.StatusNotFound:
		return gatehouse.ENotFound
	case http.StatusMethodNotAllowed:
		return gatehouse.EMethodNotAllowed
	case http.StatusConflict:
		return gatehouse.EConflict
	case http.StatusPreconditionFailed:
		return gatehouse.EPreconditionFailed
	case http.StatusRequestEntityTooLarge:
		return gatehouse.EBodyTooLarge
	case http.StatusUnsupportedMediaType:
		return gatehouse.EUnsupportedMedia
	case http.StatusTooManyRequests:
		return gatehouse.ERateLimited
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return gatehouse.EUnavailable
	}
	return gatehouse.EInternal
}

// TransportError reports that a request never got an HTTP response: the
// server could not be reached, or its certificate could not be verified.
type TransportError struct {
	URL string // the server's base URL
	Err error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("cannot reach the Gatehouse server at %s: %v", e.URL, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// Certificate reports whether the failure was TLS certificate verification,
// which a CA file (WithCAFile) usually fixes.
func (e *TransportError) Certificate() bool {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
	)
	return errors.As(e.Err, &unknown) || errors.As(e.Err, &hostname) ||
		errors.As(e.Err, &invalid) || errors.As(e.Err, &verify)
}
