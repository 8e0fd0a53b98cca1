package ca

import (
	"crypto/x509"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
)

// deviceURIPrefix starts the URI SAN that names a device in its certificate.
const deviceURIPrefix = "urn:gatehouse:"

// DeviceURI returns the URI that names a device in its certificate:
// urn:gatehouse:{scope}:{deviceId}. Scope IDs contain no ':', so the first
// ':' after the prefix ends the scope even though device IDs may contain ':'.
func DeviceURI(scope, deviceID string) string {
	return deviceURIPrefix + scope + ":" + deviceID
}

// IdentityFromCertificate returns the device a certificate names by its
// urn:gatehouse URI SAN. The certificate must hold exactly one such URI, with
// a valid scope and device ID; otherwise the error is EInvalid. It does not
// verify the certificate: do that first (the TLS handshake does).
func IdentityFromCertificate(cert *x509.Certificate) (scope, deviceID string, err error) {
	var found string
	n := 0
	for _, u := range cert.URIs {
		if s := u.String(); strings.HasPrefix(s, deviceURIPrefix) {
			found = s
			n++
		}
	}
	switch n {
	case 0:
		return "", "", gatehouse.Errorf(gatehouse.EInvalid, "the certificate names no Gatehouse device (no urn:gatehouse URI SAN); use a certificate Gatehouse issued")
	case 1:
	default:
		return "", "", gatehouse.Errorf(gatehouse.EInvalid, "the certificate has %d urn:gatehouse URI SANs; a device certificate has exactly one", n)
	}
	scope, deviceID, ok := strings.Cut(strings.TrimPrefix(found, deviceURIPrefix), ":")
	if !ok {
		return "", "", gatehouse.Errorf(gatehouse.EInvalid, "the certificate's URI SAN %q is not of the form urn:gatehouse:{scope}:{deviceId}", truncate(found, 200))
	}
	if err := gatehouse.ValidateScopeID(scope); err != nil {
		return "", "", gatehouse.Errorf(gatehouse.EInvalid, "the certificate's URI SAN names an invalid scope: %s", gatehouse.ErrorMessage(err))
	}
	if err := gatehouse.ValidateDeviceID(deviceID); err != nil {
		return "", "", gatehouse.Errorf(gatehouse.EInvalid, "the certificate's URI SAN names an invalid device: %s", gatehouse.ErrorMessage(err))
	}
	return scope, deviceID, nil
}
