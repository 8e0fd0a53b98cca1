// Package ca is Gatehouse's certificate authority, pure crypto with no
// storage of its own: the installation root CA (kept in the store with its
// private key sealed by the master key) and the HTTPS server certificate it
// issues at every start; each scope's issuing CA, created below the root
// (NewScopeCA) or imported from an operator's own PKI (ParseImportedCA); and
// the device credential lifecycle: CSR parsing (ParseCSR), device
// certificates (Authority.IssueDeviceCertificate), CRLs (Authority.CreateCRL)
// and OCSP responses (Authority.OCSPResponse).
//
// An Authority signs through a crypto.Signer, so its key may live in memory,
// in an HSM or in a KMS. The rare certificates (server, issuing CA) go
// through Authority.sign and x509.CreateCertificate. Device certificates,
// which are many, go through one function of their own, signDevice: the CA
// decides the profile (subject, SAN, key usage, validity), small composable
// Options add to it or refuse it, in the manner of step-ca's sign options,
// and the certificate is encoded here and signed once, without the
// verification x509.CreateCertificate adds, which would cost as much again.
// Tests hold the result to crypto/x509's byte for byte, and to openssl.
//
// Errors from bad input are *gatehouse.Error with a specific code
// (csr_invalid, unsupported_key, invalid_pem, invalid_ca, too_large) and a
// message that says what to fix and never quotes key material.
package ca
