// Package devicehttp serves the device-facing HTTP dialects over the
// provisioning core (package provision): the Azure IoT Hub Device
// Provisioning Service REST dialect, EST (RFC 7030), and Gatehouse's own
// native device API. Each dialect is a thin translation onto
// provision.Service with one error-code mapping table of its own; none
// touches storage.
//
// The server mounts New's handler for every path the admin API does not
// own, so the handler answers unknown paths itself (404, in the format of
// the dialect the path looks like). TLS client certificates are requested
// but not verified by the handshake: the chain (leaf first) goes to the
// core, which decides which anchor it must lead to. The source address of
// rate limits is the IP of the TCP peer. Secrets (SAS tokens, bootstrap
// tokens, Authorization headers, bodies) never reach a log line.
//
// # Routes
//
//	DPS     PUT  /{scope}/registrations/{registrationId}/register?api-version=2019-03-31|2021-06-01[&forceRegistration=true]
//	        GET  /{scope}/registrations/{registrationId}/operations/{operationId}?api-version=...
//	EST     GET  /.well-known/est[/{scope}]/cacerts          (no label: scope "default")
//	        POST /.well-known/est[/{scope}]/simpleenroll
//	        POST /.well-known/est[/{scope}]/simplereenroll
//	        GET  /.well-known/est[/{scope}]/csrattrs         (204: Gatehouse asks for nothing)
//	native  POST /device/v1/{scope}/register
//	        POST /device/v1/{scope}/renew
//	        GET  /device/v1/{scope}/ca
//
// docs/device-api.md describes the requests and answers in full.
//
// # DPS
//
// Credentials: "Authorization: SharedAccessSignature sr=...&sig=...&se=...&skn=registration"
// (an individual key, or a key derived from a group key), else the TLS
// client chain (X.509). The body {"registrationId", "payload", "csr"} is
// capped by WithMaxBodyBytes; members DPS knows and Gatehouse does not are
// ignored; "tpm" is refused. The registration is committed before the
// answer, a 202 {"operationId", "status": "assigning"} with Retry-After: 1;
// the poll, proving the device again, returns the registration state. An
// issued certificate (issuedCertificateChain) and the allocation webhook's
// payload are kept in memory for 15 minutes for the poll, per node; a poll
// on another node reads the certificate from the registry (the payload is
// not kept there).
//
// Errors are {"errorCode", "trackingId", "message", "timestampUtc"}; the
// trackingId is logged with the cause. Every 401 carries the same message,
// so that a client cannot tell an unknown scope or registration ID from a
// wrong key. The table (package dpswire, shared with the MQTT dialect):
//
//	gatehouse code                                   HTTP  errorCode
//	invalid, invalid_id, invalid_json, unknown_field,
//	  too_large, csr_invalid, unsupported_key,
//	  invalid_pem, invalid_transition                400   400004
//	body_too_large                                   413   413001
//	unsupported_media_type                           415   415001
//	unauthenticated, attestation_failed,
//	  enrollment_not_found                           401   401002
//	forbidden                                        403   403000
//	enrollment_disabled                              403   403001
//	enrollment_expired                               403   403002
//	device_disabled                                  403   403003
//	device_quarantined                               403   403004
//	reprovision_refused                              403   403005
//	webhook_denied                                   403   403006
//	quota_exceeded                                   403   403007
//	credential_refused                               403   403008
//	not_found (unknown operation or path)            404   404201
//	method_not_allowed                               405   405001
//	conflict                                         409   409001
//	precondition_failed                              412   412002
//	rate_limited                                     429   429001  + Retry-After
//	internal (and any unmapped code)                 500   500000  cause logged
//	webhook_failed, unavailable                      503   503000  + Retry-After
//
// A failed registration that a poll reports carries the same numeric code
// in registrationState.errorCode.
//
// # EST
//
// cacerts is a certs-only PKCS #7 (degenerate SignedData, hand-written
// here) of the scope's issuing CA through the root, base64 in 76-column
// lines. simpleenroll takes the base64 of a DER PKCS #10 (whitespace
// tolerated; PEM and binary DER accepted too) and authenticates with HTTP
// Basic (user name the registration ID, password a bootstrap token) or a
// factory certificate under an X.509 enrollment (the registration ID is
// its CN). It answers a certs-only PKCS #7 holding the issued certificate
// only (RFC 7030 section 4.2.3). An enrollment whose policy issues no
// certificates is answered 400. simplereenroll authenticates with the
// current operational certificate. Errors are text/plain; a 401 carries
// WWW-Authenticate: Basic realm="gatehouse-est". The table (estStatus)
// maps the same codes to the same HTTP statuses as the DPS table.
//
// # Native
//
// Credentials: "Authorization: SharedAccessSignature ...", "Authorization:
// Bootstrap {token}", or the TLS client chain. Bodies are strict JSON (no
// unknown members). Errors are application/problem+json with "code", as in
// the admin API; the table (nativeStatus) maps codes to the same HTTP
// statuses as the DPS table, and every 401 answers code "unauthenticated"
// with one message.
package devicehttp
