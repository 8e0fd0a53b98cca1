// Package deviceclient is the device side of Gatehouse: it provisions a
// device, keeps its identity and renews its certificate.
//
// A device proves who it is with a symmetric key (its own, or derived from
// a group key), a bootstrap token, or a factory X.509 certificate, over one
// of three HTTPS dialects: Gatehouse's native API, the Azure DPS REST
// dialect, or EST (RFC 7030). The key pair of its operational certificate is
// generated on the device and never leaves it: only a CSR is sent.
//
// What the device learns (device ID, assigned hub, certificate, key, chain,
// configuration) is kept in a Store, by default a FileStore (one JSON file,
// written atomically, mode 0600). On the next boot, Provision returns the
// stored identity while its certificate is valid, instead of registering
// again. RenewIfDue renews the certificate once two thirds of its lifetime
// have passed (native renew, or EST simplereenroll).
//
// Every network call takes a context and is retried with exponential
// backoff and full jitter when the failure is worth retrying (a dropped
// connection, 429, 5xx), waiting at least as long as the server's
// Retry-After; a refusal (wrong credentials, disabled enrollment) fails at
// once with an *Error whose Code is the server's.
//
// The package imports no database driver, nor any server package.
package deviceclient
