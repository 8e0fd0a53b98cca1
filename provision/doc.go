// Package provision is Gatehouse's one provisioning core: a device that
// has never been seen proves who it is and leaves with an identity,
// credentials, an assignment and its initial configuration.
//
// Every device-facing dialect (the native API, DPS over HTTP and MQTT,
// EST, EST-coaps) is a thin translation onto Service.Register:
//
//	rate limits -> attestation (SAS with an individual or group-derived
//	key, X.509 chain, bootstrap token) -> enrollment match and policy ->
//	pre-provision webhook -> allocation -> certificate signing (outside
//	the transaction) -> registry.CommitProvision (device, credential,
//	enrollment counters, registration record and events in one
//	transaction) -> answer.
//
// Failures carry stable gatehouse error codes; the message a device sees
// never says which part of a secret was wrong.
package provision
