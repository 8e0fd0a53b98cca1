// Package attest holds the device attestation primitives the provisioning
// service uses to decide whether a device is who it says it is. It is pure:
// no I/O, no storage, time always passed in. Callers find the enrollment,
// unseal its keys and hand them here.
//
// Three mechanisms:
//
//   - Symmetric keys, DPS style. A group key never leaves the server; each
//     device holds DeriveDeviceKey(groupKey, registrationID). The device
//     proves it with a SAS token (ParseSAS, SAS.Verify, VerifySASWithKeys,
//     SAS.CheckResource); NewSAS makes one for tests and the device SDK.
//   - X.509. VerifyChain checks a device's chain up to an enrollment's
//     anchor (a root or an intermediate) and reports how far away the
//     anchor is, so the caller can prefer the most specific enrollment;
//     RegistrationIDFromCertificate reads the registration ID from the
//     subject CN; Thumbprint names a certificate for individual
//     enrollments. A group CA is trusted only after proof of possession of
//     its key (NewVerificationCode, VerifyPossession).
//   - Bootstrap tokens: NewToken, HashToken, TokenMatches. Only the hash is
//     stored.
//
// # Errors
//
// Every failure a device can cause is a *gatehouse.Error with code
// gatehouse.EAttestationFailed and the fixed message "attestation failed",
// wrapped in an error that also carries the reason (Reason: "expired",
// "bad_signature", "wrong_resource", ...) and an internal detail. The
// message a device sees never says which part was wrong, so it cannot be
// used as an oracle; the reason and the detail (err.Error()) are for logs
// and metrics only. Proof-of-possession failures, which only an operator
// sees, carry a message that says what to fix.
package attest
