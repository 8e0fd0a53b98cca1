package ca

import (
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

func TestCreateCRL(t *testing.T) {
	a, _ := mustScopeCA(t)
	revoked := []RevokedCertificate{
		{Serial: big.NewInt(0x1234), RevokedAt: testNow.Add(-time.Hour), Reason: gatehouse.RevocationReasons["keyCompromise"]},
		{Serial: new(big.Int).Lsh(big.NewInt(1), 127), RevokedAt: testNow.Add(-2 * time.Hour), Reason: gatehouse.RevocationReasons["superseded"]},
		{Serial: big.NewInt(7), RevokedAt: testNow.Add(-3 * time.Hour)}, // unspecified
	}
	der, err := a.CreateCRL(revoked, 42, testNow, testNow.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(a.Certificate()); err != nil {
		t.Fatalf("CheckSignatureFrom: %v", err)
	}
	if got, want := crl.Number.Int64(), int64(42); got != want {
		t.Errorf("Number = %d, want %d", got, want)
	}
	if !crl.ThisUpdate.Equal(testNow) || !crl.NextUpdate.Equal(testNow.Add(24*time.Hour)) {
		t.Errorf("ThisUpdate, NextUpdate = %v, %v", crl.ThisUpdate, crl.NextUpdate)
	}
	if string(crl.RawIssuer) != string(a.Certificate().RawSubject) {
		t.Error("issuer is not the CA")
	}
	if string(crl.AuthorityKeyId) != string(a.Certificate().SubjectKeyId) {
		t.Error("authority key id is not the CA's")
	}
	if got := len(crl.RevokedCertificateEntries); got != len(revoked) {
		t.Fatalf("%d entries, want %d", got, len(revoked))
	}
	for i, e := range crl.RevokedCertificateEntries {
		want := revoked[i]
		if e.SerialNumber.Cmp(want.Serial) != 0 || !e.RevocationTime.Equal(want.RevokedAt) || e.ReasonCode != want.Reason {
			t.Errorf("entry %d = %x %v %d, want %x %v %d", i, e.SerialNumber, e.RevocationTime, e.ReasonCode, want.Serial, want.RevokedAt, want.Reason)
		}
	}
	// RFC 5280: no reasonCode extension for unspecified.
	if n := len(crl.RevokedCertificateEntries[2].Extensions); n != 0 {
		t.Errorf("the unspecified entry has %d extensions", n)
	}

	empty, err := a.CreateCRL(nil, 1, testNow, testNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if crl, err := x509.ParseRevocationList(empty); err != nil || len(crl.RevokedCertificateEntries) != 0 {
		t.Errorf("empty CRL: %v", err)
	}
}

func TestCreateCRLErrors(t *testing.T) {
	a, _ := mustScopeCA(t)
	ok := RevokedCertificate{Serial: big.NewInt(1), RevokedAt: testNow}
	tests := []struct {
		name       string
		revoked    []RevokedCertificate
		number     int64
		this, next time.Time
	}{
		{"zero number", []RevokedCertificate{ok}, 0, testNow, testNow.Add(time.Hour)},
		{"next before this", []RevokedCertificate{ok}, 1, testNow, testNow.Add(-time.Hour)},
		{"nil serial", []RevokedCertificate{{RevokedAt: testNow}}, 1, testNow, testNow.Add(time.Hour)},
		{"negative serial", []RevokedCertificate{{Serial: big.NewInt(-1)}}, 1, testNow, testNow.Add(time.Hour)},
		{"reason 7", []RevokedCertificate{{Serial: big.NewInt(1), Reason: 7}}, 1, testNow, testNow.Add(time.Hour)},
		{"reason 11", []RevokedCertificate{{Serial: big.NewInt(1), Reason: 11}}, 1, testNow, testNow.Add(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.CreateCRL(tt.revoked, tt.number, tt.this, tt.next)
			wantCode(t, err, gatehouse.EInvalid)
		})
	}
}
