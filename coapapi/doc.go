// Package coapapi is Gatehouse's CoAP front end, for constrained devices:
// CoAP over DTLS 1.2 (pre-shared keys named {scope}/{registrationId} or
// {scope}/{enrollmentId}/{registrationId}, or X.509 certificates), serving
// EST-coaps (RFC 9148) under /.well-known/est, Gatehouse's native CBOR
// resources (provisioning, desired configuration with Observe, reported
// properties), and discovery (/.well-known/core), with block-wise transfer
// (RFC 7959) for payloads larger than a datagram. Plain CoAP serves
// discovery only.
//
// It is a thin layer over the provisioning core and the registry, reached
// through the small Provisioner and Registry interfaces; errors become CoAP
// response codes through one table (errors.go).
package coapapi
