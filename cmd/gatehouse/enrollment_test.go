package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// writeGroupCA writes a CA certificate to dir and returns its path and a
// function that writes a certificate it signs, with subject CN cn.
func writeGroupCA(t *testing.T, dir string) (string, func(cn string) string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Factory CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	write := func(name string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sign := func(cn string) string {
		lk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		lt := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
		d, err := x509.CreateCertificate(rand.Reader, lt, ca, lk.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		return write("proof-"+cn+".pem", d)
	}
	return write("ca.pem", der), sign
}

func TestEnrollmentCommands(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()

	// Table mode: the keys once, with a note on stderr.
	r := n.gh("enrollment", "create", "line-1", "--type", "group", "--attestation", "symmetric_key", "--tag", "line=1",
		"--config", `{"rate":5}`, "--allocation", "hashed", "--endpoint", "hub-a.example.com:8883=2", "--endpoint", "hub-b.example.com",
		"--reprovision", "reset", "--certificate", "required")
	if r.code != 0 {
		t.Fatalf("enrollment create: %+v", r)
	}
	wantRows(t, "enrollment create", r.stdout, `ID:\s+line-1`, `Scope:\s+default`, `Type:\s+group`, `Attestation:\s+symmetric_key`, `Enabled:\s+true`,
		`Registrations:\s+0`, `Initial tags:\s+line=1`, `Initial config:\s+\{"rate":5\}`, `Certificate:\s+required`,
		`Allocation:\s+hashed hub-a.example.com:8883=2 hub-b.example.com=1`, `Reprovision:\s+reset`, `Expires:\s+-`, `ETag:\s+\S+`,
		`Created:\s+`+ts, `Updated:\s+`+ts, `Primary key:\s+\S{88}`, `Secondary key:\s+\S{88}`)
	if !strings.Contains(r.stderr, "will not be shown again") {
		t.Errorf("enrollment create stderr = %q", r.stderr)
	}
	key := regexp.MustCompile(`Primary key:\s+(\S+)`).FindStringSubmatch(r.stdout)[1]

	// JSON mode: the whole answer, token included.
	var tok gatehouse.Enrollment
	n.okJSON(&tok, "enrollment", "create", "batch-7", "--type", "group", "--attestation", "token", "--max-uses", "50", "--expires", "7d")
	if tok.Attestation.Token == "" || tok.Attestation.MaxUses != 50 || tok.Attestation.ExpiresAt == nil ||
		tok.Attestation.ExpiresAt.Sub(time.Now()) < 6*24*time.Hour || tok.ExpiresAt != nil {
		t.Errorf("token enrollment -o json = %+v", tok)
	}

	// get and list never show the secrets.
	out := n.ok("enrollment", "get", "line-1")
	if strings.Contains(out, key) || strings.Contains(out, "Primary key") {
		t.Errorf("enrollment get shows the key:\n%s", out)
	}
	var got gatehouse.Enrollment
	n.okJSON(&got, "enrollment", "get", "batch-7")
	if got.Attestation.Token != "" || got.Attestation.MaxUses != 50 {
		t.Errorf("enrollment get -o json = %+v", got)
	}
	wantRows(t, "enrollment list", n.ok("enrollment", "list"),
		`ID\s+TYPE\s+ATTESTATION\s+ENABLED\s+REGISTRATIONS\s+EXPIRES\s+CREATED`,
		`batch-7\s+group\s+token \(0/50 used\)\s+true\s+0\s+-\s+`+ts,
		`line-1\s+group\s+symmetric_key\s+true\s+0\s+-\s+`+ts)
	var page registry.EnrollmentPage
	n.okJSON(&page, "enrollment", "list", "--limit", "1")
	if len(page.Items) != 1 || page.NextCursor == "" {
		t.Errorf("enrollment list --limit 1 -o json = %+v", page)
	}
	page = registry.EnrollmentPage{}
	n.okJSON(&page, "enrollment", "list", "--limit", "1", "--all")
	if len(page.Items) != 2 || page.NextCursor != "" {
		t.Errorf("enrollment list --all -o json = %+v", page)
	}
	if r := n.gh("enrollment", "list", "--limit", "1"); r.code != 0 || !strings.Contains(r.stderr, "--cursor") {
		t.Errorf("enrollment list --limit 1: %+v", r)
	}

	// Disable and enable, conditionally.
	r = n.gh("enrollment", "disable", "line-1", "--if-match", "stale")
	if r.code != 1 || !strings.Contains(r.stderr, "(precondition_failed)") {
		t.Errorf("disable with a stale etag: %+v", r)
	}
	n.okJSON(&got, "enrollment", "disable", "line-1")
	if got.Enabled {
		t.Errorf("disable: %+v", got)
	}
	if out := n.ok("enrollment", "enable", "line-1", "--if-match", got.ETag); !regexp.MustCompile(`Enabled:\s+true`).MatchString(out) {
		t.Errorf("enable:\n%s", out)
	}

	// An individual enrollment by certificate, and a group CA verified
	// with proof of possession.
	caFile, sign := writeGroupCA(t, dir)
	n.okJSON(&got, "enrollment", "create", "factory", "--type", "group", "--attestation", "x509", "--cert", caFile)
	if got.Attestation.Verified {
		t.Errorf("a CA is verified without proof")
	}
	code := strings.TrimSpace(n.ok("enrollment", "verification-code", "factory"))
	if len(code) != 32 {
		t.Fatalf("verification-code printed %q", code)
	}
	r = n.gh("enrollment", "verify", "factory", "--cert", sign("wrong"))
	if r.code != 1 || !strings.Contains(r.stderr, "(attestation_failed)") {
		t.Errorf("verify with a wrong proof: %+v", r)
	}
	if out := n.ok("enrollment", "verify", "factory", "--cert", sign(code)); !regexp.MustCompile(`Verified:\s+true`).MatchString(out) {
		t.Errorf("verify:\n%s", out)
	}
	var vc struct {
		VerificationCode string `json:"verificationCode"`
	}
	n.okJSON(&vc, "enrollment", "verification-code", "factory")
	if len(vc.VerificationCode) != 32 {
		t.Errorf("verification-code -o json = %+v", vc)
	}

	// Delete.
	if out := n.ok("enrollment", "delete", "batch-7"); out != "Deleted enrollment batch-7 from scope default.\n" {
		t.Errorf("delete printed %q", out)
	}
	r = n.gh("enrollment", "get", "batch-7")
	if r.code != 1 || !strings.Contains(r.stderr, "(not_found)") {
		t.Errorf("get after delete: %+v", r)
	}

	// Registrations.
	r = n.gh("registration", "get", "sensor-1")
	if r.code != 1 || !strings.Contains(r.stderr, "(not_found)") {
		t.Errorf("registration get: %+v", r)
	}

	// Errors from the server: exit 1 with the code.
	for _, tc := range []struct {
		args []string
		code string
	}{
		{[]string{"enrollment", "create", "line-1", "--type", "group", "--attestation", "token", "--max-uses", "2"}, gatehouse.EConflict},
		{[]string{"enrollment", "create", "s-1", "--type", "individual", "--attestation", "x509", "--thumbprint", "abc"}, gatehouse.EInvalid},
		{[]string{"enrollment", "create", "g-1", "--type", "group", "--attestation", "x509", "--cert", sign("not-a-ca")}, gatehouse.EInvalid},
		{[]string{"enrollment", "create", "Bad ID", "--type", "group", "--attestation", "token"}, gatehouse.EInvalidID},
		{[]string{"enrollment", "create", "t-1", "--type", "group", "--attestation", "token", "--expires", "2001-01-01T00:00:00Z"}, gatehouse.EInvalid},
		{[]string{"enrollment", "create", "t-2", "--type", "group", "--attestation", "token", "--reprovision", "sometimes"}, gatehouse.EInvalid},
		{[]string{"enrollment", "create", "t-3", "--type", "group", "--attestation", "token", "--config", "[1]"}, gatehouse.EInvalid},
		{[]string{"enrollment", "verification-code", "line-1"}, gatehouse.EInvalid},
		{[]string{"enrollment", "enable", "nope"}, gatehouse.ENotFound},
		{[]string{"enrollment", "list", "--scope", "nope"}, gatehouse.ENotFound},
	} {
		if r := n.gh(tc.args...); r.code != 1 || !strings.Contains(r.stderr, "("+tc.code+")") {
			t.Errorf("gatehouse %s: %+v, want exit 1 with %s", strings.Join(tc.args, " "), r, tc.code)
		}
	}

	// Usage mistakes: exit 2, nothing sent.
	for _, args := range [][]string{
		{"enrollment", "create", "x", "--attestation", "token"},
		{"enrollment", "create", "x", "--type", "group"},
		{"enrollment", "create", "--type", "group", "--attestation", "token"},
		{"enrollment", "create", "x", "--type", "herd", "--attestation", "token"},
		{"enrollment", "create", "x", "--type", "group", "--attestation", "tpm"},
		{"enrollment", "create", "x", "--type", "group", "--attestation", "token", "--expires", "soon"},
		{"enrollment", "create", "x", "--type", "group", "--attestation", "token", "--max-uses", "-1"},
		{"enrollment", "create", "x", "--type", "group", "--attestation", "token", "--tag", "novalue"},
		{"enrollment", "create", "x", "--type", "group", "--attestation", "token", "--config", "{"},
		{"enrollment", "create", "x", "--type", "group", "--attestation", "token", "--endpoint", "h=zero"},
		{"enrollment", "create", "x", "--type", "group", "--attestation", "x509", "--cert", filepath.Join(dir, "missing.pem")},
		{"enrollment", "verify", "factory"},
		{"enrollment", "get"},
		{"enrollment", "enable", "a", "b"},
		{"enrollment", "list", "--limit", "-1"},
		{"enrollment", "frobnicate"},
		{"registration", "get"},
	} {
		if r := n.gh(args...); r.code != 2 || !strings.Contains(r.stderr, "error:") {
			t.Errorf("gatehouse %s: %+v, want exit 2", strings.Join(args, " "), r)
		}
	}
	if out := n.ok("enrollment", "list", "--type", "group", "-o", "json"); strings.Contains(out, key) {
		t.Errorf("a listing shows the key")
	}
}
