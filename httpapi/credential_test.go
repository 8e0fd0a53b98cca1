package httpapi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// mustCSR returns a PEM CSR signed by a fresh P-256 key.
func mustCSR(tb testing.TB, cn string) string {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return csrPEM(tb, cn, key)
}

func csrPEM(tb testing.TB, cn string, key crypto.Signer) string {
	tb.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// issue issues a certificate to device id of scope default.
func (e *env) issue(id string) *registry.IssuedCertificate {
	e.t.Helper()
	var ic registry.IssuedCertificate
	e.do("POST", "/v1/scopes/default/devices/"+id+"/certificates", e.admin, map[string]string{"csr": mustCSR(e.t, "ignored")}).
		want(e.t, http.StatusCreated).decode(e.t, &ic)
	return &ic
}

// parseCerts parses PEM certificates.
func parseCerts(tb testing.TB, s string) []*x509.Certificate {
	tb.Helper()
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			tb.Fatalf("parse certificate: %v", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		tb.Fatalf("no certificate in %q", s)
	}
	return out
}

// verifyLeaf checks leaf against a chain (issuing CA first, root last).
func verifyLeaf(leaf *x509.Certificate, chain []*x509.Certificate) error {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(chain[len(chain)-1])
	for _, c := range chain[:len(chain)-1] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

func TestCertificates(t *testing.T) {
	e := newEnv(t, nil)
	e.mustDevice("dev-1", nil)

	// The CA chain, as PEM by default and as JSON on request.
	r := e.do("GET", "/v1/scopes/default/ca", e.admin, nil).want(t, 200)
	if ct := r.header.Get("Content-Type"); ct != mediaPEMChain {
		t.Errorf("CA Content-Type %q, want %s", ct, mediaPEMChain)
	}
	chain := parseCerts(t, string(r.body))
	if len(chain) != 2 || chain[0].Subject.CommonName != "Gatehouse default Issuing CA" || chain[1].Subject.String() != chain[1].Issuer.String() {
		t.Fatalf("CA chain %v, want the issuing CA then the root", chain)
	}
	var info registry.CAInfo
	e.do("GET", "/v1/scopes/default/ca", e.admin, nil, "Accept", "application/json").want(t, 200).decode(t, &info)
	if info.Scope != "default" || info.Chain != string(r.body) || info.Imported || info.Thumbprint == "" {
		t.Errorf("CA info %+v", info)
	}
	for accept, want := range map[string]string{
		"application/json;q=0.5, application/pem-certificate-chain": mediaPEMChain,
		"application/*;q=0.2, application/json":                     mediaJSON,
		"text/html":                                                 mediaPEMChain,
		"*/*":                                                       mediaPEMChain,
	} {
		if ct := e.do("GET", "/v1/scopes/default/ca", e.admin, nil, "Accept", accept).want(t, 200).header.Get("Content-Type"); ct != want {
			t.Errorf("Accept %q: Content-Type %q, want %q", accept, ct, want)
		}
	}

	// Issue.
	r = e.do("POST", "/v1/scopes/default/devices/dev-1/certificates", e.admin, map[string]string{"csr": mustCSR(t, "whatever")}).want(t, http.StatusCreated)
	var raw map[string]any
	r.decode(t, &raw)
	for _, k := range []string{"serial", "certificate", "chain", "notBefore", "notAfter", "credential"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("issued certificate lacks %q: %s", k, r.body)
		}
	}
	var ic registry.IssuedCertificate
	r.decode(t, &ic)
	leaf := parseCerts(t, ic.Certificate)[0]
	if err := verifyLeaf(leaf, chain); err != nil {
		t.Errorf("the leaf does not verify against GET /ca: %v", err)
	}
	if leaf.Subject.CommonName != "dev-1" || len(leaf.URIs) != 1 || leaf.URIs[0].String() != "urn:gatehouse:default:dev-1" {
		t.Errorf("leaf subject %q URIs %v", leaf.Subject, leaf.URIs)
	}
	if ic.Serial != leaf.SerialNumber.Text(16) || ic.Chain != string(r.body) && ic.Chain != info.Chain || ic.Credential == nil || ic.Credential.Status != gatehouse.CredentialActive {
		t.Errorf("issued %+v", ic)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < gatehouse.DefaultCertValidity-time.Hour || got > gatehouse.DefaultCertValidity+time.Hour {
		t.Errorf("validity %s, want about %s", got, gatehouse.DefaultCertValidity)
	}

	// Renewal: a second certificate; both listed, the event says renewed.
	ic2 := e.issue("dev-1")
	var creds struct{ Items []gatehouse.Credential }
	e.do("GET", "/v1/scopes/default/devices/dev-1/credentials", e.admin, nil).want(t, 200).decode(t, &creds)
	var serials []string
	for _, c := range creds.Items {
		serials = append(serials, c.Serial)
	}
	if !slices.Contains(serials, ic.Serial) || !slices.Contains(serials, ic2.Serial) || len(serials) != 2 {
		t.Errorf("device credentials %q, want %s and %s", serials, ic.Serial, ic2.Serial)
	}
	if !slices.Contains(eventTypes(t, e), gatehouse.EventCredentialRenewed) {
		t.Errorf("no %s event after a second issue", gatehouse.EventCredentialRenewed)
	}

	// Listing with filters.
	e.mustDevice("dev-2", nil)
	ic3 := e.issue("dev-2")
	listed := func(q string) []string {
		t.Helper()
		var page struct {
			Items      []gatehouse.Credential
			NextCursor string
		}
		e.do("GET", "/v1/scopes/default/credentials"+q, e.admin, nil).want(t, 200).decode(t, &page)
		var out []string
		for _, c := range page.Items {
			out = append(out, c.Serial)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s ...string) []string { slices.Sort(s); return s }
	soon := url.QueryEscape(time.Now().Add(gatehouse.DefaultCertValidity + 24*time.Hour).Format(time.RFC3339))
	for q, want := range map[string][]string{
		"":                                     sorted(ic.Serial, ic2.Serial, ic3.Serial),
		"?device=dev-2":                        {ic3.Serial},
		"?kind=x509&status=active":             sorted(ic.Serial, ic2.Serial, ic3.Serial),
		"?status=revoked":                      nil,
		"?expiringBefore=" + soon:              sorted(ic.Serial, ic2.Serial, ic3.Serial),
		"?expiringBefore=2020-01-01T00:00:00Z": nil,
	} {
		if got := listed(q); !slices.Equal(got, want) {
			t.Errorf("credentials%s = %q, want %q", q, got, want)
		}
	}
	var page struct {
		Items      []gatehouse.Credential
		NextCursor string
	}
	e.do("GET", "/v1/scopes/default/credentials?limit=2", e.admin, nil).want(t, 200).decode(t, &page)
	if len(page.Items) != 2 || page.NextCursor == "" {
		t.Fatalf("limit=2 gave %d items, cursor %q", len(page.Items), page.NextCursor)
	}
	cursor := page.NextCursor
	page.Items, page.NextCursor = nil, ""
	e.do("GET", "/v1/scopes/default/credentials?limit=2&cursor="+cursor, e.admin, nil).want(t, 200).decode(t, &page)
	if len(page.Items) != 1 || page.NextCursor != "" {
		t.Errorf("second page %d items, cursor %q", len(page.Items), page.NextCursor)
	}

	// OCSP says good; then revoke; the CRL lists it and OCSP says revoked.
	issuer := chain[0]
	ocspReq, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	ocspStatus := func(get bool) int {
		t.Helper()
		var r *resp
		if get {
			r = e.do("GET", "/v1/scopes/default/ocsp/"+url.PathEscape(base64.StdEncoding.EncodeToString(ocspReq)), "", nil)
		} else {
			r = e.do("POST", "/v1/scopes/default/ocsp", "", ocspReq, "Content-Type", mediaOCSPRequest)
		}
		r.want(t, 200)
		if ct := r.header.Get("Content-Type"); ct != mediaOCSPResponse {
			t.Errorf("OCSP Content-Type %q", ct)
		}
		res, err := ocsp.ParseResponseForCert(r.body, leaf, issuer)
		if err != nil {
			t.Fatalf("OCSP response: %v", err)
		}
		return res.Status
	}
	if st := ocspStatus(false); st != ocsp.Good {
		t.Errorf("OCSP POST status %d before revocation, want good", st)
	}
	if st := ocspStatus(true); st != ocsp.Good {
		t.Errorf("OCSP GET status %d before revocation, want good", st)
	}
	var c gatehouse.Credential
	e.do("POST", "/v1/scopes/default/certificates/"+ic.Serial+"/revoke", e.admin, map[string]string{"reason": "keyCompromise"}).want(t, 200).decode(t, &c)
	if c.Status != gatehouse.CredentialRevoked || c.RevocationReason != "keyCompromise" || c.RevokedAt == nil {
		t.Errorf("revoked credential %+v", c)
	}
	e.do("POST", "/v1/scopes/default/certificates/"+ic.Serial+"/revoke", e.admin, nil).problem(t, 409, gatehouse.EAlreadyRevoked)
	// An empty body means reason unspecified; openssl's upper-case serial is accepted.
	e.do("POST", "/v1/scopes/default/certificates/"+strings.ToUpper(ic3.Serial)+"/revoke", e.admin, nil).want(t, 200).decode(t, &c)
	if c.RevocationReason != "unspecified" {
		t.Errorf("revoked without a reason: %+v", c)
	}
	if st := ocspStatus(false); st != ocsp.Revoked {
		t.Errorf("OCSP POST status %d after revocation, want revoked", st)
	}
	if st := ocspStatus(true); st != ocsp.Revoked {
		t.Errorf("OCSP GET status %d after revocation, want revoked", st)
	}
	// URL-safe base64, unpadded, is accepted too.
	r = e.do("GET", "/v1/scopes/default/ocsp/"+base64.RawURLEncoding.EncodeToString(ocspReq), "", nil).want(t, 200)
	if res, err := ocsp.ParseResponseForCert(r.body, leaf, issuer); err != nil || res.Status != ocsp.Revoked {
		t.Errorf("OCSP GET, URL-safe base64: %v, %+v", err, res)
	}

	r = e.do("GET", "/v1/scopes/default/crl", "", nil).want(t, 200)
	if ct := r.header.Get("Content-Type"); ct != mediaCRL {
		t.Errorf("CRL Content-Type %q", ct)
	}
	crl := checkCRL(t, r.body, issuer)
	if !crlLists(crl, leaf.SerialNumber) || !crlLists(crl, parseCerts(t, ic3.Certificate)[0].SerialNumber) || crlLists(crl, parseCerts(t, ic2.Certificate)[0].SerialNumber) {
		t.Errorf("CRL %v, want serials %s and %s only", crl.RevokedCertificateEntries, ic.Serial, ic3.Serial)
	}
	r = e.do("GET", "/v1/scopes/default/crl?format=pem", "", nil).want(t, 200)
	b, rest := pem.Decode(r.body)
	if b == nil || b.Type != "X509 CRL" || len(rest) != 0 {
		t.Fatalf("CRL as PEM: %q", r.body)
	}
	checkCRL(t, b.Bytes, issuer)
	if got := listed("?status=revoked"); !slices.Equal(got, sorted(ic.Serial, ic3.Serial)) {
		t.Errorf("revoked credentials %q", got)
	}

	// Any credential of a device can be revoked by ID under the device.
	ic4 := e.issue("dev-1")
	byDevice := "/v1/scopes/default/devices/dev-1/credentials/"
	e.do("POST", "/v1/scopes/default/devices/dev-2/credentials/"+ic4.Serial+"/revoke", e.admin, nil).problem(t, 404, gatehouse.ENotFound)
	e.do("POST", byDevice+"key-000000000000000000000000/revoke", e.admin, nil).problem(t, 404, gatehouse.ENotFound)
	e.do("POST", byDevice+ic4.Serial+"/revoke", e.admin, map[string]string{"reason": "boredom"}).problem(t, 400, gatehouse.EInvalid)
	e.do("POST", byDevice+ic4.Serial+"/revoke", e.admin, map[string]string{"reason": "superseded"}).want(t, 200).decode(t, &c)
	if c.Status != gatehouse.CredentialRevoked || c.RevocationReason != "superseded" || c.ID != ic4.Serial {
		t.Errorf("revoked by device credential route: %+v", c)
	}
	e.do("POST", byDevice+ic4.Serial+"/revoke", e.admin, nil).problem(t, 409, gatehouse.EAlreadyRevoked)
	if crl := checkCRL(t, e.do("GET", "/v1/scopes/default/crl", "", nil).want(t, 200).body, issuer); !crlLists(crl, parseCerts(t, ic4.Certificate)[0].SerialNumber) {
		t.Errorf("the CRL does not list %s revoked through the device's credentials", ic4.Serial)
	}

	// Decommissioning revokes the device's certificates.
	e.setState("dev-1", gatehouse.StateDecommissioned).want(t, 200)
	crl = checkCRL(t, e.do("GET", "/v1/scopes/default/crl", "", nil).want(t, 200).body, issuer)
	if !crlLists(crl, parseCerts(t, ic2.Certificate)[0].SerialNumber) {
		t.Errorf("the CRL after decommissioning does not list %s", ic2.Serial)
	}
	e.do("POST", "/v1/scopes/default/devices/dev-1/certificates", e.admin, map[string]string{"csr": mustCSR(t, "x")}).problem(t, 409, gatehouse.ECredentialDenied)
}

// checkCRL parses a DER CRL and checks its signature.
func checkCRL(t *testing.T, der []byte, issuer *x509.Certificate) *x509.RevocationList {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("parse CRL: %v", err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Errorf("CRL signature: %v", err)
	}
	return crl
}

func crlLists(crl *x509.RevocationList, serial *big.Int) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

func eventTypes(t *testing.T, e *env) []string {
	t.Helper()
	var l struct{ Items []gatehouse.Event }
	e.do("GET", "/v1/scopes/default/events?limit=1000", e.admin, nil).want(t, 200).decode(t, &l)
	var types []string
	for _, ev := range l.Items {
		types = append(types, ev.Type)
	}
	return types
}

func TestScopePolicy(t *testing.T) {
	e := newEnv(t, nil)
	var sc gatehouse.Scope
	e.do("PUT", "/v1/scopes/default/policy", e.admin, `{"certValidity":"30d","renewalOverlap":"12h","expiryLeadTime":"7d"}`).want(t, 200).decode(t, &sc)
	if sc.ID != "default" || time.Duration(sc.Policy.CertValidity) != 30*24*time.Hour || time.Duration(sc.Policy.RenewalOverlap) != 12*time.Hour ||
		time.Duration(sc.Policy.ExpiryLeadTime) != 7*24*time.Hour {
		t.Errorf("scope after PUT policy %+v", sc)
	}
	e.do("GET", "/v1/scopes/default", e.admin, nil).want(t, 200).decode(t, &sc)
	if time.Duration(sc.Policy.CertValidity) != 30*24*time.Hour {
		t.Errorf("GET scope policy %+v", sc.Policy)
	}
	e.mustDevice("dev-1", nil)
	leaf := parseCerts(t, e.issue("dev-1").Certificate)[0]
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < 30*24*time.Hour-time.Hour || got > 30*24*time.Hour+time.Hour {
		t.Errorf("validity %s under a 30d policy", got)
	}
	// Absent fields take the defaults again.
	sc = gatehouse.Scope{}
	e.do("PUT", "/v1/scopes/default/policy", e.admin, `{}`).want(t, 200).decode(t, &sc)
	if sc.Policy != (gatehouse.ScopePolicy{}) {
		t.Errorf("policy after PUT {} = %+v", sc.Policy)
	}
	op, _ := e.mustToken("default", gatehouse.RoleOperator)
	e.do("PUT", "/v1/scopes/default/policy", op, `{"certValidity":"30d"}`).problem(t, 403, gatehouse.EForbidden)

	// MQTT topic templates.
	sc = gatehouse.Scope{}
	e.do("PUT", "/v1/scopes/default/policy", e.admin, `{"mqtt":{"topicTemplates":["fleet/{scope}/{deviceId}/+","devices/{deviceId}/#"]}}`).want(t, 200).decode(t, &sc)
	if sc.Policy.MQTT == nil || strings.Join(sc.Policy.MQTT.TopicTemplates, " ") != "fleet/{scope}/{deviceId}/+ devices/{deviceId}/#" {
		t.Errorf("policy after PUT mqtt = %+v", sc.Policy)
	}
	sc = gatehouse.Scope{}
	e.do("GET", "/v1/scopes/default", e.admin, nil).want(t, 200).decode(t, &sc)
	if sc.Policy.MQTT == nil || len(sc.Policy.MQTT.TopicTemplates) != 2 {
		t.Errorf("GET scope after PUT mqtt = %+v", sc.Policy)
	}
	for _, tc := range []struct{ body, code, msg string }{
		{`{"mqtt":{"topicTemplates":["fleet/#"]}}`, gatehouse.EInvalid, "must contain {deviceId}"},
		{`{"mqtt":{"topicTemplates":["fleet/+/{deviceId}"]}}`, gatehouse.EInvalid, "before any wildcard"},
		{`{"mqtt":{"topicTemplates":["a/{deviceId}/#","a/b/{deviceId}"]}}`, gatehouse.EInvalid, "same topic"},
		{`{"mqtt":{"topicTemplates":["$dps/{deviceId}"]}}`, gatehouse.EInvalid, "must not start with '$'"},
		{`{"mqtt":{"topics":["x/{deviceId}"]}}`, gatehouse.EUnknownField, ""},
	} {
		p := e.do("PUT", "/v1/scopes/default/policy", e.admin, tc.body).problem(t, 400, tc.code)
		if !strings.Contains(p.Detail, tc.msg) {
			t.Errorf("PUT %s: detail %q, want it to contain %q", tc.body, p.Detail, tc.msg)
		}
	}
	// An empty list is the default, stored as no MQTT policy.
	sc = gatehouse.Scope{}
	e.do("PUT", "/v1/scopes/default/policy", e.admin, `{"mqtt":{"topicTemplates":[]}}`).want(t, 200).decode(t, &sc)
	if sc.Policy.MQTT != nil {
		t.Errorf("policy after an empty template list = %+v, want no MQTT policy", sc.Policy.MQTT)
	}
}

// mustOwnCA makes a root and an intermediate CA as an operator would,
// returning the intermediate's certificate, its key and the root, in PEM.
func mustOwnCA(t *testing.T) (certPEM, keyPEM, rootPEM string) {
	t.Helper()
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Operator Root"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Operator Issuing CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}))
}

func TestImportCA(t *testing.T) {
	e := newEnv(t, nil)
	e.mustDevice("dev-1", nil)
	old := e.issue("dev-1")
	certPEM, keyPEM, rootPEM := mustOwnCA(t)

	var info registry.CAInfo
	e.do("PUT", "/v1/scopes/default/ca", e.admin, registry.CAImport{Certificate: certPEM, PrivateKey: keyPEM, Chain: rootPEM}).want(t, 200).decode(t, &info)
	if !info.Imported || !strings.Contains(info.Subject, "Operator Issuing CA") || info.Chain != certPEM+rootPEM {
		t.Errorf("imported CA info %+v", info)
	}
	if chain := e.do("GET", "/v1/scopes/default/ca", e.admin, nil).want(t, 200).body; string(chain) != certPEM+rootPEM {
		t.Errorf("GET /ca after import:\n%s", chain)
	}
	chain := parseCerts(t, certPEM+rootPEM)
	leaf := parseCerts(t, e.issue("dev-1").Certificate)[0]
	if err := verifyLeaf(leaf, chain); err != nil {
		t.Errorf("a certificate issued after the import does not verify against the operator's chain: %v", err)
	}
	if err := verifyLeaf(parseCerts(t, old.Certificate)[0], chain); err == nil {
		t.Error("a certificate of the previous CA verifies against the imported chain")
	}
	checkCRL(t, e.do("GET", "/v1/scopes/default/crl", "", nil).want(t, 200).body, chain[0])

	// The key never reaches a log line, nor any answer.
	keyBody := strings.Split(keyPEM, "\n")[1]
	if strings.Contains(e.logs.String(), keyBody) {
		t.Error("the imported CA key reached the log")
	}
	if strings.Contains(string(e.do("GET", "/v1/scopes/default/events?limit=1000", e.admin, nil).body), keyBody) {
		t.Error("the imported CA key reached the event log")
	}
	// Only an admin may import.
	op, _ := e.mustToken("default", gatehouse.RoleOperator)
	e.do("PUT", "/v1/scopes/default/ca", op, registry.CAImport{Certificate: certPEM, PrivateKey: keyPEM}).problem(t, 403, gatehouse.EForbidden)
}

func TestCertificateBadInput(t *testing.T) {
	e := newEnv(t, nil)
	e.mustDevice("dev-1", nil)
	good := e.issue("dev-1")
	e.mustDevice("gone", nil)
	e.setState("gone", gatehouse.StateDecommissioned).want(t, 200)

	// A CSR with one byte of its signature flipped.
	csr := mustCSR(t, "x")
	b, _ := pem.Decode([]byte(csr))
	b.Bytes[len(b.Bytes)-5] ^= 0x01
	flipped := string(pem.EncodeToMemory(b))
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak := csrPEM(t, "x", rsaKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	badCurve := csrPEM(t, "x", p384)
	certPEM, keyPEM, rootPEM := mustOwnCA(t)
	leafPEM := good.Certificate

	cert := "/v1/scopes/default/devices/dev-1/certificates"
	revoke := "/v1/scopes/default/certificates/"
	for _, tc := range []struct {
		name, method, path string
		body               any
		hdr                []string
		status             int
		code               string
	}{
		{"garbage", "POST", cert, map[string]string{"csr": "garbage"}, nil, 400, gatehouse.ECSRInvalid},
		{"garbage PEM", "POST", cert, map[string]string{"csr": "-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----\n"}, nil, 400, gatehouse.EInvalidPEM},
		{"wrong PEM type", "POST", cert, map[string]string{"csr": leafPEM}, nil, 400, gatehouse.EInvalidPEM},
		{"two PEM blocks", "POST", cert, map[string]string{"csr": csr + csr}, nil, 400, gatehouse.EInvalidPEM},
		{"flipped signature", "POST", cert, map[string]string{"csr": flipped}, nil, 400, gatehouse.ECSRInvalid},
		{"empty csr", "POST", cert, map[string]string{"csr": ""}, nil, 400, gatehouse.ECSRInvalid},
		{"no csr field", "POST", cert, `{}`, nil, 400, gatehouse.ECSRInvalid},
		{"oversized csr", "POST", cert, map[string]string{"csr": strings.Repeat("A", 17<<10)}, nil, 400, gatehouse.ETooLarge},
		{"RSA 1024", "POST", cert, map[string]string{"csr": weak}, nil, 400, gatehouse.EUnsupportedKey},
		{"P-224", "POST", cert, map[string]string{"csr": badCurve}, nil, 400, gatehouse.EUnsupportedKey},
		{"unknown csr field", "POST", cert, `{"csr":"x","cn":"y"}`, nil, 400, gatehouse.EUnknownField},
		{"csr not JSON", "POST", cert, csr, []string{"Content-Type", "application/pkcs10"}, 415, gatehouse.EUnsupportedMedia},
		{"unknown device", "POST", "/v1/scopes/default/devices/nope/certificates", map[string]string{"csr": csr}, nil, 404, gatehouse.ENotFound},
		{"bad device id", "POST", "/v1/scopes/default/devices/BAD/certificates", map[string]string{"csr": csr}, nil, 400, gatehouse.EInvalidID},
		{"decommissioned device", "POST", "/v1/scopes/default/devices/gone/certificates", map[string]string{"csr": csr}, nil, 409, gatehouse.ECredentialDenied},
		{"unknown scope", "POST", "/v1/scopes/nope/devices/dev-1/certificates", map[string]string{"csr": csr}, nil, 404, gatehouse.ENotFound},

		{"unknown serial", "POST", revoke + "abcdef0123/revoke", nil, nil, 404, gatehouse.ENotFound},
		{"non-hex serial", "POST", revoke + "xyz/revoke", nil, nil, 400, gatehouse.EInvalid},
		{"bad reason", "POST", revoke + good.Serial + "/revoke", map[string]string{"reason": "boredom"}, nil, 400, gatehouse.EInvalid},
		{"unknown revoke field", "POST", revoke + good.Serial + "/revoke", `{"why":"x"}`, nil, 400, gatehouse.EUnknownField},
		{"revoke body not JSON", "POST", revoke + good.Serial + "/revoke", `reason=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, gatehouse.EUnsupportedMedia},

		{"bad expiringBefore", "GET", "/v1/scopes/default/credentials?expiringBefore=tomorrow", nil, nil, 400, gatehouse.EInvalid},
		{"bad status", "GET", "/v1/scopes/default/credentials?status=happy", nil, nil, 400, gatehouse.EInvalid},
		{"bad kind", "GET", "/v1/scopes/default/credentials?kind=password", nil, nil, 400, gatehouse.EInvalid},
		{"bad credential limit", "GET", "/v1/scopes/default/credentials?limit=0", nil, nil, 400, gatehouse.EInvalid},
		{"bad credential cursor", "GET", "/v1/scopes/default/credentials?cursor=garbage", nil, nil, 400, gatehouse.EInvalidCursor},
		{"bad credential device", "GET", "/v1/scopes/default/credentials?device=BAD", nil, nil, 400, gatehouse.EInvalidID},
		{"unknown credential parameter", "GET", "/v1/scopes/default/credentials?expiring=30d", nil, nil, 400, gatehouse.EInvalid},
		{"credentials of unknown device", "GET", "/v1/scopes/default/devices/nope/credentials", nil, nil, 404, gatehouse.ENotFound},

		{"import garbage", "PUT", "/v1/scopes/default/ca", registry.CAImport{Certificate: "garbage", PrivateKey: "garbage"}, nil, 400, gatehouse.EInvalidPEM},
		{"import a leaf", "PUT", "/v1/scopes/default/ca", registry.CAImport{Certificate: leafPEM, PrivateKey: keyPEM}, nil, 400, gatehouse.EInvalidCA},
		{"import with the wrong key", "PUT", "/v1/scopes/default/ca", registry.CAImport{Certificate: rootPEM, PrivateKey: keyPEM}, nil, 400, gatehouse.EInvalidCA},
		{"import a key as the certificate", "PUT", "/v1/scopes/default/ca", registry.CAImport{Certificate: keyPEM, PrivateKey: keyPEM, Chain: rootPEM}, nil, 400, gatehouse.EInvalidPEM},
		{"import with a bad chain", "PUT", "/v1/scopes/default/ca", registry.CAImport{Certificate: certPEM, PrivateKey: keyPEM, Chain: certPEM}, nil, 400, gatehouse.EInvalidCA},
		{"import unknown field", "PUT", "/v1/scopes/default/ca", `{"certificate":"x","privateKey":"y","password":"z"}`, nil, 400, gatehouse.EUnknownField},

		{"bad duration", "PUT", "/v1/scopes/default/policy", `{"certValidity":"forever"}`, nil, 400, gatehouse.EInvalid},
		{"duration not a string", "PUT", "/v1/scopes/default/policy", `{"certValidity":90}`, nil, 400, gatehouse.EInvalidJSON},
		{"validity too long", "PUT", "/v1/scopes/default/policy", `{"certValidity":"3650d"}`, nil, 400, gatehouse.EInvalid},
		{"validity too short", "PUT", "/v1/scopes/default/policy", `{"certValidity":"10m"}`, nil, 400, gatehouse.EInvalid},
		{"negative overlap", "PUT", "/v1/scopes/default/policy", `{"renewalOverlap":"-1h"}`, nil, 400, gatehouse.EInvalid},
		{"unknown policy field", "PUT", "/v1/scopes/default/policy", `{"maxDevices":5}`, nil, 400, gatehouse.EUnknownField},

		{"CRL bad format", "GET", "/v1/scopes/default/crl?format=txt", nil, nil, 400, gatehouse.EInvalid},
		{"CRL unknown scope", "GET", "/v1/scopes/nope/crl", nil, nil, 404, gatehouse.ENotFound},
		{"CRL invalid scope", "GET", "/v1/scopes/NOPE/crl", nil, nil, 404, gatehouse.ENotFound},
		{"OCSP unknown scope", "POST", "/v1/scopes/nope/ocsp", []byte{0x30, 0}, []string{"Content-Type", mediaOCSPRequest}, 404, gatehouse.ENotFound},
		{"OCSP as JSON", "POST", "/v1/scopes/default/ocsp", `{}`, nil, 415, gatehouse.EUnsupportedMedia},
		{"OCSP oversized", "POST", "/v1/scopes/default/ocsp", make([]byte, 17<<10), []string{"Content-Type", mediaOCSPRequest}, 413, gatehouse.EBodyTooLarge},
		{"OCSP GET not base64", "GET", "/v1/scopes/default/ocsp/%21%21%21", nil, nil, 400, gatehouse.EInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.do(tc.method, tc.path, e.admin, tc.body, tc.hdr...).problem(t, tc.status, tc.code)
		})
	}

	// A malformed OCSP request gets an OCSP malformedRequest answer, which
	// OCSP clients understand.
	for _, r := range []*resp{
		e.do("POST", "/v1/scopes/default/ocsp", "", "not DER", "Content-Type", mediaOCSPRequest),
		e.do("GET", "/v1/scopes/default/ocsp/"+base64.StdEncoding.EncodeToString([]byte("not DER")), "", nil),
	} {
		r.want(t, 200)
		if _, err := ocsp.ParseResponse(r.body, nil); err == nil || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("OCSP answer to garbage: %v, want a malformedRequest response", err)
		}
	}

	// None of it changed the certificate.
	var creds struct{ Items []gatehouse.Credential }
	e.do("GET", "/v1/scopes/default/devices/dev-1/credentials", e.admin, nil).want(t, 200).decode(t, &creds)
	if len(creds.Items) != 1 || creds.Items[0].Status != gatehouse.CredentialActive {
		t.Errorf("dev-1's credentials changed: %+v", creds.Items)
	}
}
