package devicehttp

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/dpswire"
	"github.com/gatehouse-iot/gatehouse/registry"
)

const apiVersion = "?api-version=2019-03-31"

func registerPath(regID string) string {
	return "/" + gatehouse.DefaultScope + "/registrations/" + regID + "/register" + apiVersion
}

func operationPath(regID, op string) string {
	return "/" + gatehouse.DefaultScope + "/registrations/" + regID + "/operations/" + op + apiVersion
}

// dpsRegister registers over DPS: the answer is the final state at once
// (200, assigned); polling the operation, as an SDK may still do, answers
// the same. It returns the poll's answer.
func (e *env) dpsRegister(c *http.Client, regID, authz string, body []byte) *dpswire.OperationStatus {
	e.t.Helper()
	if body == nil {
		body = jsonBody(e.t, map[string]string{"registrationId": regID})
	}
	hdr := []string{"Content-Type", "application/json; charset=utf-8"}
	if authz != "" {
		hdr = append(hdr, "Authorization", authz)
	}
	r := e.do(c, http.MethodPut, registerPath(regID), body, hdr...)
	if r.status != http.StatusOK {
		e.t.Fatalf("register %s: got %d %s, want 200", regID, r.status, r.body)
	}
	var op dpswire.OperationStatus
	r.json(e.t, &op)
	if op.OperationID == "" || op.Status != "assigned" || op.RegistrationState == nil || op.RegistrationState.Status != "assigned" {
		e.t.Fatalf("register %s: got %s, want an operationId and status assigned with the registration state", regID, r.body)
	}
	r = e.do(c, http.MethodGet, operationPath(regID, op.OperationID), nil, hdr[2:]...)
	if r.status != http.StatusOK {
		e.t.Fatalf("poll %s: got %d %s, want 200", regID, r.status, r.body)
	}
	var st dpswire.OperationStatus
	r.json(e.t, &st)
	if st.OperationID != op.OperationID {
		e.t.Errorf("poll: operationId %q, want %q", st.OperationID, op.OperationID)
	}
	if a, b := op.RegistrationState, st.RegistrationState; b == nil || a.DeviceID != b.DeviceID || a.ETag != b.ETag ||
		!slices.Equal(a.IssuedCertificateChain, b.IssuedCertificateChain) || string(a.Payload) != string(b.Payload) {
		e.t.Errorf("register answer and poll answer differ: %+v, %+v", a, b)
	}
	return &st
}

// dpsRefused registers and expects the error with status and errorCode.
func (e *env) dpsRefused(c *http.Client, regID, authz string, status, code int) *dpswire.ErrorBody {
	e.t.Helper()
	hdr := []string{"Content-Type", "application/json"}
	if authz != "" {
		hdr = append(hdr, "Authorization", authz)
	}
	r := e.do(c, http.MethodPut, registerPath(regID), jsonBody(e.t, map[string]string{"registrationId": regID}), hdr...)
	var body dpswire.ErrorBody
	r.json(e.t, &body)
	if r.status != status || body.ErrorCode != code {
		e.t.Fatalf("register %s: got %d %s, want %d with errorCode %d", regID, r.status, r.body, status, code)
	}
	if body.TrackingID == "" || body.TimestampUTC == "" || body.Message == "" {
		e.t.Errorf("error body %s lacks trackingId, timestampUtc or message", r.body)
	}
	return &body
}

func TestDeriveDeviceKeyVector(t *testing.T) {
	got := deriveDeviceKey(t, "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
		"sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
	if want := "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestDPSGroupSymmetricKey(t *testing.T) {
	e := newEnv(t)
	g := e.enroll(registry.EnrollmentCreate{ID: "sym-group", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey},
		Allocation:  gatehouse.Allocation{Endpoints: []gatehouse.Endpoint{{Host: "hub-1.example.com:8883"}}},
		InitialTags: map[string]string{"fleet": "north"}})
	for _, tc := range []struct {
		name  string
		regID string
		raw   bool
	}{
		{"encoded sr", "dev-sym-1", false},
		{"unencoded sr (Node SDK)", "dev-sym-2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := deriveDeviceKey(t, g.Attestation.PrimaryKey, tc.regID)
			sas := sasToken(t, key, gatehouse.DefaultScope, tc.regID, time.Now().Add(time.Hour), tc.raw)
			st := e.dpsRegister(e.client(nil), tc.regID, sas, nil)
			rs := st.RegistrationState
			if st.Status != "assigned" || rs == nil || rs.Status != "assigned" || rs.DeviceID != tc.regID ||
				rs.RegistrationID != tc.regID || rs.AssignedHub != "hub-1.example.com:8883" || rs.Substatus != "initialAssignment" {
				t.Fatalf("got %+v %+v, want assigned to hub-1 as %s", st, rs, tc.regID)
			}
			if rs.CreatedDateTimeUTC == "" || rs.LastUpdatedDateTimeUTC == "" || rs.ETag == "" {
				t.Errorf("registrationState lacks times or etag: %+v", rs)
			}
		})
	}
	// The secondary key works as well.
	key := deriveDeviceKey(t, g.Attestation.SecondaryKey, "dev-sym-3")
	e.dpsRegister(e.client(nil), "dev-sym-3", sasToken(t, key, gatehouse.DefaultScope, "dev-sym-3", time.Now().Add(time.Hour), false), nil)
	if got, want := e.devices(), []string{"dev-sym-1", "dev-sym-2", "dev-sym-3"}; !slices.Equal(got, want) {
		t.Errorf("devices: got %q, want %q", got, want)
	}
}

func TestDPSIndividualSymmetricKey(t *testing.T) {
	e := newEnv(t)
	en := e.enroll(registry.EnrollmentCreate{ID: "dev-ind-1", Type: gatehouse.EnrollmentIndividual,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}})
	sas := sasToken(t, en.Attestation.PrimaryKey, gatehouse.DefaultScope, "dev-ind-1", time.Now().Add(time.Hour), false)
	// api-version 2021-06-01 too.
	r := e.do(nil, http.MethodPut, "/default/registrations/dev-ind-1/register?api-version=2021-06-01",
		[]byte(`{"registrationId":"dev-ind-1","payload":{"model":"x1"},"capabilities":{"iotEdge":false}}`),
		"Authorization", sas, "Content-Type", "application/json")
	if r.status != http.StatusOK {
		t.Fatalf("got %d %s, want 200", r.status, r.body)
	}
	var op dpswire.OperationStatus
	r.json(t, &op)
	r = e.do(nil, http.MethodGet, "/default/registrations/dev-ind-1/operations/"+op.OperationID+"?api-version=2021-06-01", nil, "Authorization", sas)
	var st dpswire.OperationStatus
	r.json(t, &st)
	if r.status != http.StatusOK || st.Status != "assigned" || st.RegistrationState.DeviceID != "dev-ind-1" {
		t.Fatalf("poll: got %d %s", r.status, r.body)
	}
	// The poll needs the proof again.
	other := sasToken(t, base64.StdEncoding.EncodeToString(make([]byte, 32)), gatehouse.DefaultScope, "dev-ind-1", time.Now().Add(time.Hour), false)
	r = e.do(nil, http.MethodGet, "/default/registrations/dev-ind-1/operations/"+op.OperationID+apiVersion, nil, "Authorization", other)
	if r.status != http.StatusUnauthorized {
		t.Errorf("poll with a wrong key: got %d %s, want 401", r.status, r.body)
	}
	// An unknown operation is 404.
	r = e.do(nil, http.MethodGet, "/default/registrations/dev-ind-1/operations/4.0000.0000"+apiVersion, nil, "Authorization", sas)
	if r.status != http.StatusNotFound || !strings.Contains(string(r.body), "404201") {
		t.Errorf("poll of an unknown operation: got %d %s, want 404 with 404201", r.status, r.body)
	}
}

func TestDPSRefusals(t *testing.T) {
	e := newEnv(t)
	g := e.enroll(registry.EnrollmentCreate{ID: "sym-group", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}})
	e.enroll(registry.EnrollmentCreate{ID: "dev-ind", Type: gatehouse.EnrollmentIndividual,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}})
	wrongKey := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	soon := time.Now().Add(time.Hour)

	wrong := e.dpsRefused(nil, "dev-wrong", sasToken(t, wrongKey, "default", "dev-wrong", soon, false), 401, 401002)
	// The group's key itself (not the derived one) is wrong too.
	e.dpsRefused(nil, "dev-wrong-2", sasToken(t, g.Attestation.PrimaryKey, "default", "dev-wrong-2", soon, false), 401, 401002)
	// A wrong key for an individual enrollment.
	indWrong := e.dpsRefused(nil, "dev-ind", sasToken(t, wrongKey, "default", "dev-ind", soon, false), 401, 401002)
	// Expired.
	key := deriveDeviceKey(t, g.Attestation.PrimaryKey, "dev-expired")
	e.dpsRefused(nil, "dev-expired", sasToken(t, key, "default", "dev-expired", time.Now().Add(-time.Minute), false), 401, 401002)
	// A token for another registration ID.
	key = deriveDeviceKey(t, g.Attestation.PrimaryKey, "dev-a")
	e.dpsRefused(nil, "dev-b", sasToken(t, key, "default", "dev-a", soon, false), 401, 401002)
	// An unknown scope: the same answer as a wrong key.
	r := e.do(nil, http.MethodPut, "/nosuch/registrations/dev-x/register"+apiVersion, []byte(`{"registrationId":"dev-x"}`),
		"Authorization", sasToken(t, wrongKey, "nosuch", "dev-x", soon, false))
	var unknownScope dpswire.ErrorBody
	r.json(t, &unknownScope)
	if r.status != 401 || unknownScope.ErrorCode != 401002 {
		t.Fatalf("unknown scope: got %d %s, want 401 401002", r.status, r.body)
	}
	// No credentials at all, or another scheme.
	e.dpsRefused(nil, "dev-none", "", 401, 401002)
	e.dpsRefused(nil, "dev-bearer", "Bearer abc", 401, 401002)
	for _, b := range []*dpswire.ErrorBody{indWrong, &unknownScope} {
		if b.Message != wrong.Message {
			t.Errorf("message %q differs from %q: the answers must not tell the cases apart", b.Message, wrong.Message)
		}
	}
	if d := e.devices(); len(d) != 0 {
		t.Errorf("devices after refusals: %q, want none", d)
	}
}

func TestDPSX509Chain(t *testing.T) {
	e := newEnv(t)
	root := newRootCA(t, "Maker Root")
	inter := root.intermediate(t, "Maker Intermediate")
	e.enroll(registry.EnrollmentCreate{ID: "maker-root", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestX509, Certificate: root.pem(), Verified: true}})
	leaf, key := inter.leaf(t, "dev-x509-1")
	c := e.client(key, leaf.Raw, inter.cert.Raw)
	csr := newCSR(t, newKey(t), "ignored")
	st := e.dpsRegister(c, "dev-x509-1", "", jsonBody(t, map[string]string{"registrationId": "dev-x509-1", "csr": base64.StdEncoding.EncodeToString(csr)}))
	rs := st.RegistrationState
	if st.Status != "assigned" || rs.DeviceID != "dev-x509-1" {
		t.Fatalf("got %+v, want assigned", rs)
	}
	if len(rs.IssuedCertificateChain) < 2 {
		t.Fatalf("issuedCertificateChain: got %d certificates, want the leaf and its CA chain", len(rs.IssuedCertificateChain))
	}
	var certs []*x509.Certificate
	for _, s := range rs.IssuedCertificateChain {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	verify(t, certs[0], certs[1:])

	// A poll that lands on another node, which did not run the
	// registration, answers the same certificate chain from the registry.
	srv2 := httptest.NewUnstartedServer(New(e.prov))
	srvCert, err := e.root.IssueServerCertificate([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv2.TLS = ca.ServerTLSConfig(srvCert)
	srv2.TLS.ClientAuth = tls.RequestClientCert
	srv2.StartTLS()
	defer srv2.Close()
	node1 := e.srv
	e.srv = srv2
	r := e.do(c, http.MethodGet, operationPath("dev-x509-1", st.OperationID), nil)
	e.srv = node1
	var st2 dpswire.OperationStatus
	r.json(t, &st2)
	if r.status != http.StatusOK || st2.Status != "assigned" || !slices.Equal(st2.RegistrationState.IssuedCertificateChain, rs.IssuedCertificateChain) {
		t.Errorf("poll on another node: %d %s, want the same issuedCertificateChain", r.status, r.body)
	}

	// A leaf whose CN is another registration ID is refused.
	other, key2 := inter.leaf(t, "dev-x509-other")
	e.dpsRefused(e.client(key2, other.Raw, inter.cert.Raw), "dev-x509-2", "", 401, 401002)
	// Without the intermediate the chain does not reach the root.
	leaf3, key3 := inter.leaf(t, "dev-x509-3")
	e.dpsRefused(e.client(key3, leaf3.Raw), "dev-x509-3", "", 401, 401002)
	// A chain from an unknown maker.
	stranger := newRootCA(t, "Stranger")
	leaf4, key4 := stranger.leaf(t, "dev-x509-4")
	e.dpsRefused(e.client(key4, leaf4.Raw, stranger.cert.Raw), "dev-x509-4", "", 401, 401002)
}

func TestDPSX509MostSpecificEnrollmentWins(t *testing.T) {
	e := newEnv(t)
	root := newRootCA(t, "Maker Root")
	inter := root.intermediate(t, "Maker Intermediate")
	e.enroll(registry.EnrollmentCreate{ID: "maker-root", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestX509, Certificate: root.pem(), Verified: true}})
	e.enroll(registry.EnrollmentCreate{ID: "maker-line-2", Type: gatehouse.EnrollmentGroup, Enabled: ptr(false),
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestX509, Certificate: inter.pem(), Verified: true}})
	leaf, key := inter.leaf(t, "dev-line-2")
	e.dpsRefused(e.client(key, leaf.Raw, inter.cert.Raw), "dev-line-2", "", 403, 403001)
	// A device of another intermediate under the same root still gets in.
	inter2 := root.intermediate(t, "Maker Intermediate 2")
	leaf2, key2 := inter2.leaf(t, "dev-line-1")
	st := e.dpsRegister(e.client(key2, leaf2.Raw, inter2.cert.Raw), "dev-line-1", "", nil)
	if st.Status != "assigned" {
		t.Fatalf("got %+v, want assigned", st)
	}
	if got, want := e.devices(), []string{"dev-line-1"}; !slices.Equal(got, want) {
		t.Errorf("devices: got %q, want %q", got, want)
	}
}

func TestDPSIdempotent(t *testing.T) {
	e := newEnv(t)
	g := e.enroll(registry.EnrollmentCreate{ID: "sym-group", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}})
	key := deriveDeviceKey(t, g.Attestation.PrimaryKey, "dev-twice")
	sas := sasToken(t, key, "default", "dev-twice", time.Now().Add(time.Hour), false)
	first := e.dpsRegister(e.client(nil), "dev-twice", sas, nil)
	second := e.dpsRegister(e.client(nil), "dev-twice", sas, nil)
	if first.RegistrationState.DeviceID != second.RegistrationState.DeviceID {
		t.Errorf("device IDs differ: %q, %q", first.RegistrationState.DeviceID, second.RegistrationState.DeviceID)
	}
	if second.RegistrationState.Substatus != "deviceDataMigrated" {
		t.Errorf("second substatus: got %q, want deviceDataMigrated", second.RegistrationState.Substatus)
	}
	if got, want := e.devices(), []string{"dev-twice"}; !slices.Equal(got, want) {
		t.Errorf("devices: got %q, want %q", got, want)
	}
}

func TestDPSConcurrentRegistrationsOfOneID(t *testing.T) {
	e := newEnv(t)
	g := e.enroll(registry.EnrollmentCreate{ID: "sym-group", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}})
	key := deriveDeviceKey(t, g.Attestation.PrimaryKey, "dev-herd")
	sas := sasToken(t, key, "default", "dev-herd", time.Now().Add(time.Hour), false)
	c := e.client(nil)
	const n = 50
	var wg sync.WaitGroup
	statuses := make([]int, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := e.try(c, http.MethodPut, registerPath("dev-herd"), []byte(`{"registrationId":"dev-herd"}`),
				"Authorization", sas, "Content-Type", "application/json")
			if err != nil {
				errs[i] = err
				return
			}
			statuses[i] = r.status
			if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") == "" {
				errs[i] = errorString("429 without Retry-After")
			}
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, s := range statuses {
		if errs[i] != nil {
			t.Errorf("request %d: %v", i, errs[i])
		}
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
		default:
			t.Errorf("request %d: status %d, want 200 or 429", i, s)
		}
	}
	if ok == 0 {
		t.Errorf("no registration succeeded")
	}
	if got, want := e.devices(), []string{"dev-herd"}; !slices.Equal(got, want) {
		t.Errorf("devices: got %q, want %q", got, want)
	}
	t.Logf("%d of %d accepted, the rest throttled", ok, n)
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestDPSBadRequests(t *testing.T) {
	e := newEnv(t)
	g := e.enroll(registry.EnrollmentCreate{ID: "sym-group", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}})
	sasFor := func(regID string) string {
		return sasToken(t, deriveDeviceKey(t, g.Attestation.PrimaryKey, regID), "default", regID, time.Now().Add(time.Hour), false)
	}
	big := `{"registrationId":"dev-big","payload":{"x":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}}`
	for _, tc := range []struct {
		name, method, path, body string
		status, code             int
	}{
		{"malformed JSON", "PUT", registerPath("dev-bad-1"), `{"registrationId":`, 400, 400004},
		{"not an object", "PUT", registerPath("dev-bad-2"), `["dev-bad-2"]`, 400, 400004},
		{"trailing data", "PUT", registerPath("dev-bad-3"), `{"registrationId":"dev-bad-3"} x`, 400, 400004},
		{"registrationId mismatch", "PUT", registerPath("dev-bad-4"), `{"registrationId":"dev-other"}`, 400, 400004},
		{"registrationId not a string", "PUT", registerPath("dev-bad-5"), `{"registrationId":5}`, 400, 400004},
		{"oversize body", "PUT", registerPath("dev-big"), big, 413, 413001},
		{"payload over 16 KiB", "PUT", registerPath("dev-bad-6"), `{"payload":{"x":"` + strings.Repeat("a", 17<<10) + `"}}`, 400, 400004},
		{"garbage base64 csr", "PUT", registerPath("dev-bad-7"), `{"csr":"!!!not base64!!!"}`, 400, 400004},
		{"csr not a CSR", "PUT", registerPath("dev-bad-8"), `{"csr":"` + base64.StdEncoding.EncodeToString([]byte("hello, world")) + `"}`, 400, 400004},
		{"tpm", "PUT", registerPath("dev-bad-9"), `{"tpm":{"endorsementKey":"x"}}`, 400, 400004},
		{"unknown api-version", "PUT", "/default/registrations/dev-bad-10/register?api-version=2018-11-01", `{}`, 400, 400004},
		{"missing api-version", "PUT", "/default/registrations/dev-bad-11/register", `{}`, 400, 400004},
		{"bad forceRegistration", "PUT", registerPath("dev-bad-12") + "&forceRegistration=maybe", `{}`, 400, 400004},
		{"invalid registration ID", "PUT", registerPath("Dev%20Bad"), `{}`, 400, 400004},
		{"wrong method", "POST", registerPath("dev-bad-13"), `{}`, 405, 405001},
		{"unknown path", "GET", "/nothing/here", ``, 404, 404201},
	} {
		t.Run(tc.name, func(t *testing.T) {
			regID := strings.Split(strings.TrimPrefix(tc.path, "/default/registrations/"), "/")[0]
			r := e.do(nil, tc.method, tc.path, []byte(tc.body), "Authorization", sasFor(regID), "Content-Type", "application/json")
			var body dpswire.ErrorBody
			r.json(t, &body)
			if r.status != tc.status || body.ErrorCode != tc.code {
				t.Fatalf("got %d %s, want %d with errorCode %d", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	if d := e.devices(); len(d) != 0 {
		t.Errorf("devices after bad requests: %q, want none", d)
	}
}

func verify(t testing.TB, leaf *x509.Certificate, chain []*x509.Certificate) {
	t.Helper()
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(chain[len(chain)-1])
	for _, c := range chain[:len(chain)-1] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("verify issued certificate: %v", err)
	}
}
