package adminclient_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// groupCA makes a CA and returns its PEM and a function that signs proof
// certificates with it.
func groupCA(t *testing.T) (string, func(cn string) []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Group CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	sign := func(cn string) []byte {
		lk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		lt := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
		d, err := x509.CreateCertificate(rand.Reader, lt, ca, lk.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), sign
}

func TestEnrollments(t *testing.T) {
	n := startNode(t)
	c, ctx := n.admin, t.Context()

	sym, err := c.CreateEnrollment(ctx, "default", registry.EnrollmentCreate{ID: "line-1", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}, InitialTags: map[string]string{"line": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if sym.Attestation.PrimaryKey == "" || sym.Attestation.SecondaryKey == "" {
		t.Errorf("generated keys not returned: %+v", sym.Attestation)
	}
	got, err := c.GetEnrollment(ctx, "default", "line-1")
	if err != nil || got.Attestation.PrimaryKey != "" || got.InitialTags["line"] != "1" {
		t.Errorf("GetEnrollment = %+v, %v", got, err)
	}

	tok, err := c.CreateEnrollment(ctx, "default", registry.EnrollmentCreate{ID: "batch", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, MaxUses: 10}})
	if err != nil || len(tok.Attestation.Token) < 32 || tok.Attestation.MaxUses != 10 {
		t.Fatalf("token enrollment = %+v, %v", tok, err)
	}

	// Proof of possession of a group CA.
	caPEM, sign := groupCA(t)
	if _, err := c.CreateEnrollment(ctx, "default", registry.EnrollmentCreate{ID: "line-ca", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestX509, Certificate: caPEM}}); err != nil {
		t.Fatal(err)
	}
	code, err := c.NewVerificationCode(ctx, "default", "line-ca")
	if err != nil || len(code) != 32 {
		t.Fatalf("NewVerificationCode = %q, %v", code, err)
	}
	_, err = c.VerifyCA(ctx, "default", "line-ca", sign("not-the-code"))
	wantCode(t, "VerifyCA with a wrong CN", err, 400, gatehouse.EAttestationFailed)
	v, err := c.VerifyCA(ctx, "default", "line-ca", sign(code))
	if err != nil || !v.Attestation.Verified {
		t.Errorf("VerifyCA = %+v, %v", v, err)
	}

	// Listing, by page and by iterator.
	page, err := c.ListEnrollments(ctx, "default", adminclient.EnrollmentListOptions{Type: gatehouse.EnrollmentGroup, Limit: 2})
	if err != nil || len(page.Items) != 2 || page.NextCursor == "" {
		t.Fatalf("ListEnrollments = %+v, %v", page, err)
	}
	var ids []string
	for e, err := range c.Enrollments(ctx, "default", adminclient.EnrollmentListOptions{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	if want := []string{"batch", "line-1", "line-ca"}; !slices.Equal(ids, want) {
		t.Errorf("Enrollments = %q, want %q", ids, want)
	}

	// Patch, conditionally.
	_, err = c.PatchEnrollment(ctx, "default", "line-1", registry.EnrollmentPatch{Enabled: new(false)}, "stale")
	wantCode(t, "PatchEnrollment with a stale etag", err, 412, gatehouse.EPreconditionFailed)
	off, err := c.PatchEnrollment(ctx, "default", "line-1", registry.EnrollmentPatch{Enabled: new(false), MaxRegistrations: new(5)}, got.ETag)
	if err != nil || off.Enabled || off.MaxRegistrations != 5 {
		t.Fatalf("PatchEnrollment = %+v, %v", off, err)
	}
	on, err := c.MergePatchEnrollment(ctx, "default", "line-1", json.RawMessage(`{"enabled":true,"maxRegistrations":null,"initialTags":{"line":null}}`), "")
	if err != nil || !on.Enabled || on.MaxRegistrations != 0 || len(on.InitialTags) != 0 {
		t.Errorf("MergePatchEnrollment = %+v, %v", on, err)
	}

	// Delete.
	wantCode(t, "DeleteEnrollment with a stale etag", c.DeleteEnrollment(ctx, "default", "batch", "stale"), 412, gatehouse.EPreconditionFailed)
	if err := c.DeleteEnrollment(ctx, "default", "batch", tok.ETag); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetEnrollment(ctx, "default", "batch")
	wantCode(t, "GetEnrollment after delete", err, 404, gatehouse.ENotFound)

	// Registrations: none yet.
	_, err = c.GetRegistration(ctx, "default", "sensor-1")
	wantCode(t, "GetRegistration", err, 404, gatehouse.ENotFound)
	_, err = c.CreateEnrollment(ctx, "default", registry.EnrollmentCreate{ID: "x", Type: gatehouse.EnrollmentGroup, Attestation: gatehouse.Attestation{Type: "tpm"}})
	wantCode(t, "CreateEnrollment tpm", err, 400, gatehouse.EInvalid)
}
