// Package ca is Gatehouse's certificate authority: the installation root CA,
// kept in the store with its private key sealed by the master key, and the
// HTTPS server certificate it issues at every start.
//
// An Authority signs through a crypto.Signer, so its key may live in memory
// (as the installation root's does), in an HSM or in a KMS. Every certificate
// goes through one signing function, Authority.sign, which applies the policy
// common to all of them: serial numbers, key identifiers, and validity
// clamped to the issuer's. Per-scope issuing CAs will be Authorities too,
// issued by the installation root, whose MaxPathLen of 1 leaves room for them.
package ca
