package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// FuzzParseDeviceQuery feeds raw query strings to the device listing's
// parser: it must never panic, must fail only with a 400 code, and must
// only accept what the registry can run.
func FuzzParseDeviceQuery(f *testing.F) {
	for _, s := range []string{
		"", "state=active", "state=active,inactive&state=provisioned", "connection=online",
		"tag=site=north&tag=rack!=7&tag=a+in+(x,y)&tag=!b&tag=c", "limit=10&cursor=" + gatehouse.EncodeCursor("dev-1"),
		"tag=%zz", "limit=-1", "cursor=%00", "state=,,,", "tag=k+notin+(a,,b)", "x=1", "tag=" + string([]byte{0xff}),
		"lastSeenBefore=2026-01-02T15:04:05Z&lastSeenAfter=2026-01-01T00:00:00.5%2B01:00&enrollment=enr-1", "lastSeenBefore=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseDeviceQuery(raw)
		if err != nil {
			if code := gatehouse.ErrorCode(err); statusOf[code] != http.StatusBadRequest {
				t.Fatalf("parseDeviceQuery(%q) failed with code %q (status %d), want a 400 code", raw, code, statusOf[code])
			}
			return
		}
		if len(q.Selectors) > gatehouse.MaxSelectors {
			t.Fatalf("parseDeviceQuery(%q) accepted %d selectors", raw, len(q.Selectors))
		}
		if q.Limit < 0 || q.Limit > registry.MaxPageSize {
			t.Fatalf("parseDeviceQuery(%q) accepted limit %d", raw, q.Limit)
		}
		for _, s := range q.States {
			if !s.Valid() {
				t.Fatalf("parseDeviceQuery(%q) accepted state %q", raw, s)
			}
		}
		if q.Connection != "" && q.Connection != gatehouse.Online && q.Connection != gatehouse.Offline {
			t.Fatalf("parseDeviceQuery(%q) accepted connection %q", raw, q.Connection)
		}
		if _, err := gatehouse.DecodeCursor(q.Cursor); err != nil {
			t.Fatalf("parseDeviceQuery(%q) accepted cursor %q", raw, q.Cursor)
		}
	})
}

// FuzzParseCredentialQuery feeds raw query strings to the credential
// listing's parser: it must never panic, must fail only with a 400 code, and
// must only accept known statuses and kinds.
func FuzzParseCredentialQuery(f *testing.F) {
	for _, s := range []string{
		"", "status=active,revoked&status=expired", "kind=x509", "device=dev-1&limit=5",
		"expiringBefore=2026-01-02T15:04:05Z", "expiringBefore=2026-01-02T15:04:05%2B02:00", "expiringBefore=tomorrow",
		"cursor=" + gatehouse.EncodeCursor("ab"), "status=,,", "kind=x509,x509,x509,x509", "limit=1001", "x=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseCredentialQuery(raw)
		if err != nil {
			if code := gatehouse.ErrorCode(err); statusOf[code] != http.StatusBadRequest {
				t.Fatalf("parseCredentialQuery(%q) failed with code %q (status %d), want a 400 code", raw, code, statusOf[code])
			}
			return
		}
		if q.Limit < 0 || q.Limit > registry.MaxPageSize || len(q.Statuses) > 4 || len(q.Kinds) > 3 {
			t.Fatalf("parseCredentialQuery(%q) accepted %+v", raw, q)
		}
		for _, s := range q.Statuses {
			if s != gatehouse.CredentialActive && s != gatehouse.CredentialSuperseded && s != gatehouse.CredentialRevoked && s != gatehouse.CredentialExpired {
				t.Fatalf("parseCredentialQuery(%q) accepted status %q", raw, s)
			}
		}
	})
}

// FuzzParseEnrollmentQuery feeds raw query strings to the enrollment
// listing's parser: it must never panic and must fail only with a 400 code.
func FuzzParseEnrollmentQuery(f *testing.F) {
	for _, s := range []string{"", "type=group", "type=individual&limit=5", "type=x", "cursor=" + gatehouse.EncodeCursor("e-1"), "cursor=%zz", "limit=0", "type=group&type=group"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		typ, cursor, limit, err := parseEnrollmentQuery(raw)
		if err != nil {
			if code := gatehouse.ErrorCode(err); statusOf[code] != http.StatusBadRequest {
				t.Fatalf("parseEnrollmentQuery(%q) failed with code %q, want a 400 code", raw, code)
			}
			return
		}
		if typ != "" && typ != gatehouse.EnrollmentGroup && typ != gatehouse.EnrollmentIndividual || limit < 0 || limit > registry.MaxPageSize {
			t.Fatalf("parseEnrollmentQuery(%q) accepted %q, %d", raw, typ, limit)
		}
		if _, err := gatehouse.DecodeCursor(cursor); err != nil {
			t.Fatalf("parseEnrollmentQuery(%q) accepted cursor %q", raw, cursor)
		}
	})
}

// FuzzNegotiate feeds Accept headers to the content negotiation: it must
// never panic and must pick one of the offers.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "application/json", "application/json;q=0.5, application/pem-certificate-chain", "*/*;q=0", "application/*;q=abc", ";;,,", "a/b;q=1e999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		if got := negotiate([]string{accept}, mediaPEMChain, mediaJSON); got != mediaPEMChain && got != mediaJSON {
			t.Fatalf("negotiate(%q) = %q", accept, got)
		}
	})
}

// FuzzWrites sends arbitrary bodies, content types and device IDs to the
// handlers that take a body, in process over a real store: no input may
// produce a 5xx or a malformed error.
func FuzzWrites(f *testing.F) {
	reg, admin := mustOpenRegistry(f)
	h := New(reg, WithMaxBodyBytes(64<<10))
	p, err := reg.Authenticate(f.Context(), admin)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := reg.CreateDevice(f.Context(), p, "default", registry.DeviceCreate{ID: "dev-1", Tags: map[string]string{"a": "b"}}); err != nil {
		f.Fatal(err)
	}
	ca := mustTestCA(f, "fuzz CA")
	for _, req := range []registry.EnrollmentCreate{
		{ID: "grp", Type: gatehouse.EnrollmentGroup, Attestation: gatehouse.Attestation{Type: gatehouse.AttestX509, Certificate: ca.pem}},
		{ID: "sym", Type: gatehouse.EnrollmentGroup, Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}},
		{ID: "tok", Type: gatehouse.EnrollmentIndividual, Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken}},
	} {
		if _, err := reg.CreateEnrollment(f.Context(), p, "default", req); err != nil {
			f.Fatal(err)
		}
	}
	if _, err := reg.NewVerificationCode(f.Context(), p, "default", "grp"); err != nil {
		f.Fatal(err)
	}
	targets := []struct{ method, path string }{
		{"POST", "/v1/scopes"},
		{"POST", "/v1/scopes/default/tokens"},
		{"POST", "/v1/scopes/default/devices"},
		{"PATCH", "/v1/scopes/default/devices/{id}"},
		{"POST", "/v1/scopes/default/devices/{id}/state"},
		{"DELETE", "/v1/scopes/default/devices/{id}"},
		{"GET", "/v1/scopes/default/devices/{id}/history"},
		{"POST", "/v1/scopes/default/devices/{id}/certificates"},
		{"PUT", "/v1/scopes/default/ca"},
		{"PUT", "/v1/scopes/default/policy"},
		{"POST", "/v1/scopes/default/certificates/{id}/revoke"},
		{"POST", "/v1/scopes/default/ocsp"},
		{"GET", "/v1/scopes/default/ocsp/{id}"},
		{"GET", "/v1/scopes/default/credentials?expiringBefore={id}"},
		{"POST", "/v1/scopes/default/enrollments"},
		{"PATCH", "/v1/scopes/default/enrollments/{id}"},
		{"DELETE", "/v1/scopes/default/enrollments/{id}"},
		{"POST", "/v1/scopes/default/enrollments/{id}/verification-code"},
		{"POST", "/v1/scopes/default/enrollments/{id}/verify"},
		{"GET", "/v1/scopes/default/registrations/{id}"},
		{"GET", "/v1/scopes/default/enrollments?type=group&cursor={id}"},
	}
	contentTypes := []string{"application/json", "application/merge-patch+json", "application/json; charset=utf-8", "text/plain", "", "application/json; x=\"", "application/ocsp-request"}

	f.Add(uint8(0), uint8(0), "dev-1", []byte(`{"id":"acme"}`))
	f.Add(uint8(1), uint8(0), "dev-1", []byte(`{"name":"n","role":"viewer"}`))
	f.Add(uint8(2), uint8(0), "dev-1", []byte(`{"id":"d2","tags":{"k":"v"},"config":{"a":[1,2,{"b":null}]}}`))
	f.Add(uint8(3), uint8(1), "dev-1", []byte(`{"tags":{"a":null,"c":"d"},"config":{"x":{"y":1}}}`))
	f.Add(uint8(3), uint8(0), "dev-1", []byte(`{"tags":null,"config":null}`))
	f.Add(uint8(3), uint8(0), "dev-1", []byte(`{"tags":[],"config":"x"}`))
	f.Add(uint8(4), uint8(2), "dev-1", []byte(`{"state":"quarantined","reason":"r"}`))
	f.Add(uint8(4), uint8(0), "Dev/1", []byte(`{"state":"x"}`))
	f.Add(uint8(5), uint8(0), "..", []byte(nil))
	f.Add(uint8(6), uint8(0), "%00", []byte(nil))
	f.Add(uint8(2), uint8(3), "", []byte(`{"id":1e999}`))
	f.Add(uint8(7), uint8(0), "dev-1", []byte(`{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add(uint8(8), uint8(0), "", []byte(`{"certificate":"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----","privateKey":"x"}`))
	f.Add(uint8(9), uint8(0), "", []byte(`{"certValidity":"90d","renewalOverlap":"-5h"}`))
	f.Add(uint8(10), uint8(0), "0a:FF", []byte(`{"reason":"superseded"}`))
	f.Add(uint8(10), uint8(4), "1", []byte(nil))
	f.Add(uint8(11), uint8(6), "", []byte{0x30, 0x03, 0x30, 0x01, 0x00})
	f.Add(uint8(12), uint8(0), "MAMwAQA%3D", []byte(nil))
	f.Add(uint8(13), uint8(0), "2026-01-01T00:00:00+01:00", []byte(nil))
	f.Add(uint8(14), uint8(0), "", []byte(`{"id":"e-1","type":"group","attestation":{"type":"symmetric_key"},"initialTags":{"a":"b"},"allocation":{"policy":"hashed","endpoints":[{"host":"h:1","weight":2}]}}`))
	f.Add(uint8(14), uint8(0), "", []byte(`{"id":"e-2","type":"individual","attestation":{"type":"x509","thumbprint":"AB:CD"},"preProvisionWebhook":{"url":"http://[::1]:1/x","secret":"0123456789abcdef","timeout":"1s"}}`))
	f.Add(uint8(14), uint8(2), "", []byte(`{"id":"e-3","type":"group","attestation":{"type":"token","maxUses":1e9,"expiresAt":"1999-01-01T00:00:00Z"}}`))
	f.Add(uint8(14), uint8(0), "", []byte(`{"id":"e-4","type":"group","attestation":{"type":"x509","certificate":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}`))
	f.Add(uint8(15), uint8(1), "sym", []byte(`{"enabled":false,"initialTags":{"a":null},"allocation":{"endpoints":null},"expiresAt":"2999-01-01T00:00:00Z"}`))
	f.Add(uint8(15), uint8(0), "tok", []byte(`{"preProvisionWebhook":{"url":"https://h/x"},"reprovision":null,"credentials":{"validity":"0s"}}`))
	f.Add(uint8(15), uint8(1), "grp", []byte(`{"initialConfig":{"a":{"b":[1,null]}},"deviceIdTemplate":"{registrationId}-{enrollmentId}"}`))
	f.Add(uint8(15), uint8(1), "sym", []byte(`{"expiresAt":null,"enabled":null}`))
	f.Add(uint8(16), uint8(0), "tok", []byte(nil))
	f.Add(uint8(17), uint8(0), "grp", []byte(nil))
	f.Add(uint8(17), uint8(0), "tok", []byte(`{}`))
	f.Add(uint8(18), uint8(0), "grp", []byte(`{"certificate":"`+strings.ReplaceAll(ca.pem, "\n", `\n`)+`"}`))
	f.Add(uint8(19), uint8(0), "dev-1", []byte(nil))
	f.Add(uint8(20), uint8(0), gatehouse.EncodeCursor("sym"), []byte(nil))

	f.Fuzz(func(t *testing.T, target, ct uint8, id string, body []byte) {
		tg := targets[int(target)%len(targets)]
		path := fillPath(tg.path, "default", url.PathEscape(id))
		req := httptest.NewRequest(tg.method, path, bytes.NewReader(body))
		if c := contentTypes[int(ct)%len(contentTypes)]; c != "" {
			req.Header.Set("Content-Type", c)
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", tg.method, path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var pr Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &pr); err != nil || pr.Code == "" || pr.Status != rec.Code {
				t.Fatalf("%s %s %q: malformed problem %d %s", tg.method, path, body, rec.Code, rec.Body)
			}
		}
	})
}
