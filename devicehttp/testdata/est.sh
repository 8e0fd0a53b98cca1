#!/usr/bin/env bash
# Enrols a device over EST (RFC 7030) with nothing but curl and openssl, as
# an operator or a device script would. Environment:
#   EST_URL              base URL, e.g. https://gatehouse.example:8443/.well-known/est
#   EST_CA_FILE          PEM file that the server's TLS certificate chains to
#   EST_REGISTRATION_ID  the device's registration ID (HTTP Basic user name)
#   EST_TOKEN            its bootstrap token (HTTP Basic password)
#   WORK_DIR             where to put the files (default: a temporary directory)
set -euo pipefail

: "${EST_URL:?}" "${EST_CA_FILE:?}" "${EST_REGISTRATION_ID:?}" "${EST_TOKEN:?}"
WORK_DIR=${WORK_DIR:-$(mktemp -d)}
cd "$WORK_DIR"

# 1. The CA certificates: certs-only PKCS#7, base64.
curl -sS --fail-with-body --cacert "$EST_CA_FILE" -o cacerts.b64 "$EST_URL/cacerts"
base64 -d cacerts.b64 > cacerts.p7
openssl pkcs7 -inform DER -in cacerts.p7 -print_certs -out cacerts.pem
n=$(grep -c 'BEGIN CERTIFICATE' cacerts.pem)
echo "cacerts: $n certificates"
[ "$n" -ge 2 ]

# 2. A key and a CSR, base64 of DER.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout device.key \
	-subj "/CN=$EST_REGISTRATION_ID" -outform DER -out device.csr 2>/dev/null
base64 device.csr > device.csr.b64

# 3. simpleenroll, authenticated with the bootstrap token.
curl -sS --fail-with-body --cacert "$EST_CA_FILE" -u "$EST_REGISTRATION_ID:$EST_TOKEN" \
	-H 'Content-Type: application/pkcs10' --data-binary @device.csr.b64 \
	-D enroll.headers -o device.p7.b64 "$EST_URL/simpleenroll"
grep -qi '^content-type: application/pkcs7-mime' enroll.headers
base64 -d device.p7.b64 > device.p7
openssl pkcs7 -inform DER -in device.p7 -print_certs -out device.pem
openssl x509 -in device.pem -noout -subject -issuer -enddate

# 4. The certificate verifies against the CA certificates.
openssl verify -CAfile cacerts.pem device.pem

# 5. A missing password is refused with a Basic challenge.
status=$(curl -sS --cacert "$EST_CA_FILE" -o /dev/null -D noauth.headers -w '%{http_code}' \
	-H 'Content-Type: application/pkcs10' --data-binary @device.csr.b64 "$EST_URL/simpleenroll")
[ "$status" = 401 ]
grep -qi '^www-authenticate: basic' noauth.headers

# 6. simplereenroll with the new certificate as the TLS client certificate.
openssl req -new -key device.key -subj "/CN=$EST_REGISTRATION_ID" -outform DER 2>/dev/null | base64 > renew.csr.b64
curl -sS --fail-with-body --cacert "$EST_CA_FILE" --cert device.pem --key device.key \
	-H 'Content-Type: application/pkcs10' --data-binary @renew.csr.b64 \
	-o renewed.p7.b64 "$EST_URL/simplereenroll"
base64 -d renewed.p7.b64 | openssl pkcs7 -inform DER -print_certs -out renewed.pem
openssl verify -CAfile cacerts.pem renewed.pem
if cmp -s device.pem renewed.pem; then
	echo "simplereenroll returned the same certificate" >&2
	exit 1
fi
echo OK
