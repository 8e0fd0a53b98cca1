// Package httpapi serves Gatehouse's admin REST API: scopes, API tokens,
// devices, their lifecycle and history, each scope's certificate authority
// (its chain, device certificates, revocation, credential listings),
// enrollments (with proof of possession for a group's CA) and registration
// records, and the event log (as JSON pages and as a Server-Sent Events stream). It also
// serves each scope's revocation status without authentication, as PKI
// clients expect: the CRL (RFC 5280) and an OCSP responder (RFC 6960).
//
// It is a thin front end over the registry. Handlers decode a request, call
// one registry method with the authenticated principal (the registry
// authorises) and encode the result. Handlers return an error; one function
// turns it into an RFC 9457 problem response, using one table that maps each
// Gatehouse error code to an HTTP status. The routes live in one table too,
// which the OpenAPI document served at /v1/openapi.json is tested against.
//
// TLS is the caller's business: New returns an http.Handler.
package httpapi
