// Package adminclient is a Go client for Gatehouse's admin REST API: scopes,
// API tokens, devices, their lifecycle and history, each scope's certificate
// authority (device certificates, revocation, CRL, OCSP), and the event log,
// including the live event stream (server-sent events) with automatic resume.
//
// The gatehouse CLI is built on it, and so are the end-to-end tests. It
// speaks HTTPS only (TLS 1.2 or later; plain HTTP is accepted for loopback
// addresses alone, for tests), authenticates with a bearer token, and
// decodes into the domain types of the gatehouse and registry packages.
//
// Errors the server reports come back as *APIError, which unwraps to a
// *gatehouse.Error with the same code, so gatehouse.ErrorCode works on them:
//
//	_, err := c.GetDevice(ctx, "default", "sensor-1")
//	if gatehouse.ErrorCode(err) == gatehouse.ENotFound { ... }
//
// Failures to reach the server at all (connection refused, DNS, an
// untrusted certificate) come back as *TransportError.
package adminclient
