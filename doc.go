// Package gatehouse holds Gatehouse's domain: scopes (tenants), devices and
// their lifecycle, API tokens and roles, events, the error codes every front end
// maps to its own protocol, and the Store contract that storage backends meet.
//
// It does no I/O. Subpackages adapt it to the outside world: store/sqlite and
// store/postgres persist it, registry implements the use cases on top of a
// Store, httpapi serves them over HTTPS, and cmd/gatehouse ties it all into one
// binary.
package gatehouse
