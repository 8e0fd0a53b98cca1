package azuredps_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/provision"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/server"
)

// env is a real Gatehouse node (HTTPS and MQTT over TLS on loopback ports)
// and the installed SDK.
type env struct {
	t        *testing.T
	sdk      *sdk
	admin    *adminclient.Client
	caFile   string // the installation root: NODE_EXTRA_CA_CERTS
	httpPort string
	mqttPort string
}

// newEnv starts a node with the device-facing rate limits given (nil:
// generous ones, so that only the cases meant to be throttled are).
func newEnv(t *testing.T, limits *server.RateLimits) *env {
	t.Helper()
	s := installSDK(t)
	if limits == nil {
		limits = &server.RateLimits{PerSource: 10_000, SourceBurst: 10_000, PerID: 100, IDBurst: 100}
	}
	dir := t.TempDir()
	srv, err := server.Start(t.Context(), server.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", RateLimits: limits})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	tok, err := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, server.CAFile)
	admin, err := adminclient.New(srv.URL(), strings.TrimSpace(string(tok)), adminclient.WithCAFile(caFile))
	if err != nil {
		t.Fatal(err)
	}
	_, httpPort, _ := net.SplitHostPort(srv.Addr().String())
	_, mqttPort, _ := net.SplitHostPort(srv.MQTTAddr().String())
	return &env{t: t, sdk: s, admin: admin, caFile: caFile, httpPort: httpPort, mqttPort: mqttPort}
}

// register runs the SDK's ProvisioningDeviceClient for registrationID over
// transport (http or mqtt), with the credential flags given.
func (e *env) register(t *testing.T, transport, registrationID string, cred ...string) *sdkResult {
	t.Helper()
	port := e.httpPort
	if transport == "mqtt" {
		port = e.mqttPort
	}
	args := append([]string{"--transport", transport, "--host", "127.0.0.1", "--port", port,
		"--scope", gatehouse.DefaultScope, "--registration-id", registrationID}, cred...)
	return e.sdk.run(t, e.caFile, args...)
}

// assigned checks that the SDK finished a registration of registrationID
// as device deviceID on hub, with substatus.
func assigned(t *testing.T, r *sdkResult, registrationID, deviceID, hub, substatus string) {
	t.Helper()
	if !r.OK {
		t.Fatalf("the SDK failed: %+v\n%s", r.Error, r.Stderr)
	}
	got := r.State
	if got.Status != "assigned" || got.RegistrationID != registrationID || got.DeviceID != deviceID ||
		got.AssignedHub != hub || got.Substatus != substatus {
		t.Errorf("registration state = %s\nwant status assigned, registrationId %q, deviceId %q, assignedHub %q, substatus %q",
			r.Result, registrationID, deviceID, hub, substatus)
	}
	// encoding/json matches names case-insensitively; an application reads
	// them exactly as DPS spells them.
	for _, f := range []string{"registrationId", "assignedHub", "deviceId", "status", "substatus", "createdDateTimeUtc", "lastUpdatedDateTimeUtc", "etag"} {
		if _, ok := r.Fields[f]; !ok {
			t.Errorf("registration state has no member %q: %s", f, r.Result)
		}
	}
}

// unauthorized checks the SDK's answer to a wrong credential. Over HTTPS
// the DPS error body reaches it as an UnauthorizedError; over MQTT the
// CONNECT is refused and the SDK passes mqtt.js's error on.
func unauthorized(t *testing.T, r *sdkResult, transport string) {
	t.Helper()
	if r.OK {
		t.Fatalf("the SDK registered with a wrong credential: %s", r.Result)
	}
	switch e := r.Error; transport {
	case "http":
		if e.Name != "UnauthorizedError" || e.StatusCode != 401 || e.Body.ErrorCode != 401002 || e.Body.TrackingID == "" ||
			!strings.Contains(e.Message, "401002") {
			t.Errorf("error = %+v, want UnauthorizedError, status 401, errorCode 401002 with a trackingId", e)
		}
	case "mqtt":
		// MQTT 3.1.1 CONNACK 4, which mqtt.js reports as below.
		if e.Message != "Connection refused: Bad username or password" || string(e.Code) != "4" {
			t.Errorf("error = %+v, want mqtt.js's \"Connection refused: Bad username or password\" (CONNACK 4)", e)
		}
	}
}

// polled checks the poll provision.js made with the SDK's transport after
// registering again: the operation the registration answered, assigned,
// and the registry's latest registration.
func polled(t *testing.T, e *env, r *sdkResult, id string) {
	t.Helper()
	p := r.Poll
	if p == nil {
		t.Fatalf("no poll in %s", r.Result)
	}
	reg, err := e.admin.GetRegistration(t.Context(), gatehouse.DefaultScope, id)
	if err != nil {
		t.Fatal(err)
	}
	st := p.Answer.RegistrationState
	if p.OperationID == "" || p.Answer.OperationID != p.OperationID || p.Answer.Status != "assigned" ||
		st.Status != "assigned" || st.DeviceID != id || st.RegistrationID != id || st.Substatus != "deviceDataMigrated" {
		t.Errorf("poll = %+v, want operation %q assigned to %s", p, p.OperationID, id)
	}
	if reg.OperationID != p.OperationID {
		t.Errorf("the registry's latest operation is %q, the SDK polled %q", reg.OperationID, p.OperationID)
	}
}

// device checks the registry's record of a device the SDK registered.
func (e *env) device(t *testing.T, deviceID, enrollmentID string) *gatehouse.Device {
	t.Helper()
	ctx := t.Context()
	d, err := e.admin.GetDevice(ctx, gatehouse.DefaultScope, deviceID)
	if err != nil {
		t.Fatalf("device %s is not in the registry: %v", deviceID, err)
	}
	if d.State != gatehouse.StateProvisioned || d.Enrollment != enrollmentID {
		t.Errorf("device %s: state %q, enrollment %q; want provisioned, %q", deviceID, d.State, d.Enrollment, enrollmentID)
	}
	reg, err := e.admin.GetRegistration(ctx, gatehouse.DefaultScope, deviceID)
	if err != nil || reg.Status != gatehouse.RegAssigned || reg.DeviceID != deviceID || reg.EnrollmentID != enrollmentID {
		t.Errorf("registration record of %s = %+v, %v", deviceID, reg, err)
	}
	return d
}

// credentials checks a device's active credentials, by kind: a device of
// a symmetric key enrollment has its key; the SDK sends no CSR, so an X.509
// device gets no certificate (its factory certificate stays outside the
// registry).
func (e *env) credentials(t *testing.T, deviceID string, want map[gatehouse.CredentialKind]int) {
	t.Helper()
	creds, err := e.admin.DeviceCredentials(t.Context(), gatehouse.DefaultScope, deviceID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[gatehouse.CredentialKind]int{}
	for _, c := range creds {
		if c.Status == gatehouse.CredentialActive {
			got[c.Kind]++
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("active credentials of %s: %v, want %v", deviceID, got, want)
	}
}

var (
	symmetricKey = map[gatehouse.CredentialKind]int{gatehouse.CredentialSymmetricKey: 1}
	none         = map[gatehouse.CredentialKind]int{}
)

// absent checks that a refused registration left nothing in the registry.
func (e *env) absent(t *testing.T, registrationID string) {
	t.Helper()
	ctx := t.Context()
	if d, err := e.admin.GetDevice(ctx, gatehouse.DefaultScope, registrationID); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
		t.Errorf("device %s after a refused registration: %+v, %v; want not found", registrationID, d, err)
	}
	if reg, err := e.admin.GetRegistration(ctx, gatehouse.DefaultScope, registrationID); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
		t.Errorf("registration record of %s after a refused registration: %+v, %v; want not found", registrationID, reg, err)
	}
}

func (e *env) enroll(t *testing.T, c registry.EnrollmentCreate) *gatehouse.Enrollment {
	t.Helper()
	en, err := e.admin.CreateEnrollment(t.Context(), gatehouse.DefaultScope, c)
	if err != nil {
		t.Fatalf("create enrollment %s: %v", c.ID, err)
	}
	return en
}

// The worked example of a derived device key in Azure's documentation
// ("Derive a device key" for symmetric key enrollment groups).
const (
	docGroupKey       = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
	docRegistrationID = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
	docDeviceKey      = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
)

// deriveKey is the group key derivation: base64(HMAC-SHA256(base64decode(groupKey), registrationID)).
func deriveKey(t *testing.T, groupKey, registrationID string) string {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(groupKey)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(registrationID))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// hubs is where the enrollments send devices: DPS's assignedHub is a host
// name.
var hubs = []gatehouse.Endpoint{{Host: "hub-1.example.com"}}

// TestAzureDPSNodeSDK drives Microsoft's Azure IoT DPS device SDK for
// Node.js (azure-iot-provisioning-device with its HTTP and MQTT transports,
// azure-iot-security-symmetric-key, azure-iot-security-x509; versions in
// package-lock.json) against a real node, over both DPS dialects.
func TestAzureDPSNodeSDK(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)

	// One group of each kind serves both transports. The symmetric group's
	// key is the one of the worked example in Azure's documentation.
	e.enroll(t, registry.EnrollmentCreate{ID: "sym-group", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey, PrimaryKey: docGroupKey, SecondaryKey: keyOf("secondary")},
		Allocation:  gatehouse.Allocation{Endpoints: hubs}})
	groupKey := docGroupKey

	root := newCA(t, "Factory Root CA", nil)
	e.enroll(t, registry.EnrollmentCreate{ID: "x509-group", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestX509, Certificate: root.pem()}, Allocation: gatehouse.Allocation{Endpoints: hubs}})
	code, err := e.admin.NewVerificationCode(t.Context(), gatehouse.DefaultScope, "x509-group")
	if err != nil {
		t.Fatal(err)
	}
	proof, _ := root.leaf(t, code)
	if v, err := e.admin.VerifyCA(t.Context(), gatehouse.DefaultScope, "x509-group", pemCert(proof.Raw)); err != nil || !v.Attestation.Verified {
		t.Fatalf("verify the group CA: %+v, %v", v, err)
	}
	line := newCA(t, "Factory Line 7 CA", root) // devices chain through an intermediate

	hook := newAllocationHook(t)
	e.enroll(t, registry.EnrollmentCreate{ID: "custom-group", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey, PrimaryKey: keyOf("custom group key"), SecondaryKey: keyOf("custom group key 2")},
		Allocation: gatehouse.Allocation{Policy: gatehouse.AllocateCustom,
			Webhook: &gatehouse.Webhook{URL: hook.url, Secret: "a webhook secret of some length"}}})
	customKey := keyOf("custom group key")

	for _, tr := range []string{"http", "mqtt"} {
		t.Run(tr, func(t *testing.T) {
			t.Run("individual symmetric key", func(t *testing.T) {
				id := "sym-ind-" + tr
				en := e.enroll(t, registry.EnrollmentCreate{ID: id, Type: gatehouse.EnrollmentIndividual,
					Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}, Allocation: gatehouse.Allocation{Endpoints: hubs}})
				key := en.Attestation.PrimaryKey

				// A wrong key first: refused, nothing written.
				unauthorized(t, e.register(t, tr, id, "--key", otherKey(key)), tr)
				e.absent(t, id)

				r := e.register(t, tr, id, "--key", key)
				assigned(t, r, id, id, "hub-1.example.com", "initialAssignment")
				e.device(t, id, id)
				e.credentials(t, id, symmetricKey)

				// Registering again is idempotent: the same device, migrated.
				// The secondary key works too; and the operation can be polled.
				again := e.register(t, tr, id, "--key", en.Attestation.SecondaryKey, "--poll")
				assigned(t, again, id, id, "hub-1.example.com", "deviceDataMigrated")
				e.device(t, id, id)
				polled(t, e, again, id)
			})

			t.Run("group derived key", func(t *testing.T) {
				// Over HTTPS the registration ID of Azure's worked example;
				// over MQTT (where it is also the client ID and part of the
				// user name) one with every punctuation DPS allows.
				id := map[string]string{"http": docRegistrationID, "mqtt": "sn:007.888_abc-mqtt"}[tr]
				unauthorized(t, e.register(t, tr, id, "--group-key", otherKey(groupKey)), tr)
				e.absent(t, id)

				// provision.js derives the device key from the group key as
				// Azure's documentation does.
				assigned(t, e.register(t, tr, id, "--group-key", groupKey), id, id, "hub-1.example.com", "initialAssignment")
				e.device(t, id, "sym-group")
				e.credentials(t, id, symmetricKey)

				// The derived key given as is, as a device holds it.
				key := deriveKey(t, groupKey, id)
				if id == docRegistrationID && key != docDeviceKey {
					t.Fatalf("derived key %s, Azure's documentation says %s", key, docDeviceKey)
				}
				assigned(t, e.register(t, tr, id, "--key", key), id, id, "hub-1.example.com", "deviceDataMigrated")
			})

			t.Run("x509 group chain", func(t *testing.T) {
				id := "x509-grp-" + tr + "-0001"
				cert, key := e.files(t, line, id)
				assigned(t, e.register(t, tr, id, "--cert", cert, "--cert-key", key), id, id, "hub-1.example.com", "initialAssignment")
				e.device(t, id, "x509-group")
				e.credentials(t, id, none)
				again := e.register(t, tr, id, "--cert", cert, "--cert-key", key, "--poll")
				assigned(t, again, id, id, "hub-1.example.com", "deviceDataMigrated")
				polled(t, e, again, id)

				// A chain to a CA no enrollment names.
				stray := newCA(t, "Somebody Else's CA", nil)
				id = "x509-stray-" + tr
				cert, key = e.files(t, stray, id)
				unauthorized(t, e.register(t, tr, id, "--cert", cert, "--cert-key", key), tr)
				e.absent(t, id)
			})

			t.Run("x509 individual", func(t *testing.T) {
				id := "x509-ind-" + tr
				self := newCA(t, id, nil) // a self-signed device certificate, as Azure's samples make
				cert, key := e.files(t, self, "")
				e.enroll(t, registry.EnrollmentCreate{ID: id, Type: gatehouse.EnrollmentIndividual,
					Attestation: gatehouse.Attestation{Type: gatehouse.AttestX509, Certificate: self.pem()}, Allocation: gatehouse.Allocation{Endpoints: hubs}})
				assigned(t, e.register(t, tr, id, "--cert", cert, "--cert-key", key), id, id, "hub-1.example.com", "initialAssignment")
				e.device(t, id, id)
				e.credentials(t, id, none)
			})

			t.Run("custom allocation payload", func(t *testing.T) {
				id := "custom-" + tr + "-0001"
				r := e.register(t, tr, id, "--group-key", customKey, "--payload", `{"model":"th-2","fw":"1.4.0"}`)
				assigned(t, r, id, id, "hub-custom.example.com", "initialAssignment")
				if got, want := string(r.State.Payload), `{"echo":{"fw":"1.4.0","model":"th-2"},"interval":30}`; got != want {
					t.Errorf("payload the SDK returned = %s, want %s", got, want)
				}
				if got := hook.payload(id); got != `{"fw":"1.4.0","model":"th-2"}` {
					t.Errorf("payload the allocation webhook received = %s", got)
				}
				e.device(t, id, "custom-group")
				e.credentials(t, id, symmetricKey)
			})
		})
	}
}

// TestAzureDPSNodeSDKThrottled: a registration over the per-ID rate limit.
// Over MQTT the answer is 429 with &retry-after= in the topic, which the
// SDK's MQTT transport takes as "registering": it waits that long and sends
// the registration again, and succeeds. The SDK's HTTP transport fails on
// any status of 300 and above before looking at its Retry-After (it would
// do the same against Azure DPS), so there the 429 reaches the application
// as a ThrottlingError, with the Retry-After header.
func TestAzureDPSNodeSDKThrottled(t *testing.T) {
	t.Parallel()
	// One registration per ID, then one every 5 s: slow enough that the
	// second registration is throttled however slowly node starts, and the
	// retry-after the SDK must wait (5 s) stands out.
	e := newEnv(t, &server.RateLimits{PerSource: 10_000, SourceBurst: 10_000, PerID: 0.2, IDBurst: 1})
	en := e.enroll(t, registry.EnrollmentCreate{ID: "throttled", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}, Allocation: gatehouse.Allocation{Endpoints: hubs}})
	key := en.Attestation.PrimaryKey

	t.Run("mqtt", func(t *testing.T) {
		id := "throttled-mqtt"
		assigned(t, e.register(t, "mqtt", id, "--group-key", key), id, id, "hub-1.example.com", "initialAssignment")
		start := time.Now()
		assigned(t, e.register(t, "mqtt", id, "--group-key", key), id, id, "hub-1.example.com", "deviceDataMigrated")
		// The retry-after is in there: the SDK did wait, and did not give up.
		if took := time.Since(start); took < 4*time.Second {
			t.Errorf("the throttled registration took %v: no retry-after wait?", took)
		}
	})
	t.Run("http", func(t *testing.T) {
		id := "throttled-http"
		assigned(t, e.register(t, "http", id, "--group-key", key), id, id, "hub-1.example.com", "initialAssignment")
		r := e.register(t, "http", id, "--group-key", key)
		if r.OK {
			t.Fatalf("a registration over the rate limit went through: %s", r.Result)
		}
		if e := r.Error; e.Name != "ThrottlingError" || e.StatusCode != 429 || e.RetryAfter == "" || e.Body.ErrorCode != 429001 {
			t.Errorf("error = %+v, want ThrottlingError, status 429 with Retry-After, errorCode 429001", e)
		}
	})
}

// allocationHook is a custom allocation webhook: it sends every device to
// hub-custom.example.com and answers with a payload echoing the device's.
type allocationHook struct {
	url string
	mu  sync.Mutex
	got map[string]string // registration ID -> payload received
}

func newAllocationHook(t *testing.T) *allocationHook {
	h := &allocationHook{got: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req provision.HookRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var p map[string]any
		json.Unmarshal(req.Payload, &p)
		norm, _ := json.Marshal(p)
		h.mu.Lock()
		h.got[req.RegistrationID] = string(norm)
		h.mu.Unlock()
		out, _ := json.Marshal(map[string]any{"assignedHub": "hub-custom.example.com", "payload": map[string]any{"echo": p, "interval": 30}})
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func (h *allocationHook) payload(registrationID string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got[registrationID]
}

// testCA is a certificate authority of a device maker, outside Gatehouse.
type testCA struct {
	cert  *x509.Certificate
	key   *ecdsa.PrivateKey
	chain []*x509.Certificate // the issuers above it, up to but not including the root
}

// newCA makes a CA certificate signed by parent (self-signed if nil).
func newCA(t *testing.T, cn string, parent *testCA) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	issuer, signer := tmpl, key
	var chain []*x509.Certificate
	if parent != nil {
		issuer, signer = parent.cert, parent.key
		if parent.cert.Subject.String() != parent.cert.Issuer.String() {
			chain = append([]*x509.Certificate{parent.cert}, parent.chain...)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: c, key: key, chain: chain}
}

// leaf issues a device certificate with cn (the registration ID) as its
// subject CN.
func (a *testCA) leaf(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func (a *testCA) pem() string { return string(pemCert(a.cert.Raw)) }

// files writes, for the SDK, a device certificate issued by ca for cn with
// the chain up to (not including) the root, and its key. With cn empty, ca
// is itself the device's (self-signed) certificate.
func (e *env) files(t *testing.T, ca *testCA, cn string) (certFile, keyFile string) {
	t.Helper()
	var certPEM []byte
	var key *ecdsa.PrivateKey
	if cn == "" {
		certPEM, key = pemCert(ca.cert.Raw), ca.key
	} else {
		leaf, k := ca.leaf(t, cn)
		certPEM, key = pemCert(leaf.Raw), k
		if ca.cert.Subject.String() != ca.cert.Issuer.String() {
			certPEM = append(certPEM, pemCert(ca.cert.Raw)...)
		}
		for _, c := range ca.chain {
			certPEM = append(certPEM, pemCert(c.Raw)...)
		}
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "device.pem"), filepath.Join(dir, "device.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// keyOf makes a fixed 64-byte base64 key from a phrase.
func keyOf(phrase string) string {
	b := make([]byte, 64)
	copy(b, phrase)
	return base64.StdEncoding.EncodeToString(b)
}

// otherKey returns a valid key that is not key.
func otherKey(key string) string {
	return keyOf("not " + key[:8] + " " + strconv.Itoa(len(key)))
}
