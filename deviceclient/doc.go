// Package deviceclient is the device side of Gatehouse: it provisions a
// device, keeps its identity and renews its certificate.
//
// A device proves who it is with a symmetric key (its own, or derived from
// a group key), a bootstrap token, or a factory X.509 certificate, over one
// of seven transports: Gatehouse's native API, the Azure DPS REST dialect
// and EST (RFC 7030) over HTTPS; the DPS MQTT dialect and Gatehouse's native
// MQTT dialect over MQTT 5 with TLS; Gatehouse's native CoAP resource
// (/prov) and EST-coaps (RFC 9148) over CoAP with DTLS 1.2, where the
// device's key is the pre-shared key. The key pair of its operational
// certificate is generated on the device and never leaves it: only a CSR
// is sent.
//
// Config.Protocols sets a fallback order (for example DPSMQTT, then Native,
// then CoAP): when a protocol cannot reach the server (no connection, a
// timeout, 5xx) the device moves on to the next at once; a refusal (wrong
// credentials, a disabled enrollment, a bad CSR) stops there, over any
// protocol.
//
// What the device learns (device ID, assigned hub, certificate, key, chain,
// configuration, the protocol that worked) is kept in a Store, by default
// a FileStore (one JSON file, written atomically, mode 0600) at
// DefaultStorePath; a MemoryStore keeps it for the life of the process. On the next boot, Provision returns the stored identity while its
// certificate is valid, instead of registering again. RenewIfDue renews
// the certificate once two thirds of its lifetime have passed (native
// renew, EST simplereenroll, or EST-coaps sren).
//
// Every network call takes a context and is retried with exponential
// backoff and full jitter when the failure is worth retrying (a dropped
// connection, 429, 5xx), waiting at least as long as the server's
// Retry-After (CoAP: Max-Age; MQTT: retry-after); a refusal fails at once
// with an *Error whose Code is the server's. Every transport's answers are
// mapped onto HTTP statuses so that one classification (Error.Retryable)
// serves all.
//
// The package imports no database driver, nor any server package.
package deviceclient
