package ca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/secret"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

func mustKeyring(tb testing.TB) *secret.Keyring {
	tb.Helper()
	key := make([]byte, secret.KeySize)
	for i := range key {
		key[i] = byte(i + 1)
	}
	kr, err := secret.NewKeyring(key)
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// MustInstallationCA returns a new installation CA in a fresh memStore.
func MustInstallationCA(tb testing.TB) (*Authority, *memStore, *secret.Keyring) {
	tb.Helper()
	st, kr := newMemStore(), mustKeyring(tb)
	a, err := LoadOrCreateInstallationCA(tb.Context(), st, kr, fixedNow)
	if err != nil {
		tb.Fatal(err)
	}
	return a, st, kr
}

func TestCreateInstallationCA(t *testing.T) {
	a, st, _ := MustInstallationCA(t)
	c := a.Certificate()

	checks := []struct {
		name string
		got  any
		want any
	}{
		{"CommonName", c.Subject.CommonName, "Gatehouse Installation Root CA"},
		{"self-issued", c.Issuer.String(), c.Subject.String()},
		{"IsCA", c.IsCA, true},
		{"BasicConstraintsValid", c.BasicConstraintsValid, true},
		{"MaxPathLen", c.MaxPathLen, 1},
		{"KeyUsage", c.KeyUsage, x509.KeyUsageCertSign | x509.KeyUsageCRLSign},
		{"NotAfter", c.NotAfter, testNow.Add(10 * 365 * 24 * time.Hour)},
		{"NotBefore before now", c.NotBefore.Before(testNow), true},
		{"SignatureAlgorithm", c.SignatureAlgorithm, x509.ECDSAWithSHA256},
		{"SubjectKeyId length", len(c.SubjectKeyId), 20},
		{"serial positive", c.SerialNumber.Sign(), 1},
		{"serial <= 128 bits", c.SerialNumber.BitLen() <= 128, true},
		{"serial > 64 bits (random)", c.SerialNumber.BitLen() > 64, true},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key is %T, want ECDSA P-256", c.PublicKey)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if !bytes.Contains(a.CertPEM(), []byte("-----BEGIN CERTIFICATE-----")) {
		t.Errorf("CertPEM() = %q", a.CertPEM())
	}
	if _, err := st.GetSetting(t.Context(), SettingInstallationCA); err != nil {
		t.Errorf("setting not stored: %v", err)
	}
}

func TestReloadInstallationCA(t *testing.T) {
	a, st, kr := MustInstallationCA(t)
	later := func() time.Time { return testNow.Add(48 * time.Hour) }
	b, err := LoadOrCreateInstallationCA(t.Context(), st, kr, later)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Certificate().Raw, b.Certificate().Raw) {
		t.Error("reload returned another certificate")
	}
	if !a.Signer().(*ecdsa.PrivateKey).Equal(b.Signer()) {
		t.Error("reload returned another key")
	}
}

// The stored record must not hold the private key in any readable form.
func TestInstallationCAKeyStoredSealed(t *testing.T) {
	a, st, _ := MustInstallationCA(t)
	stored, _ := st.GetSetting(t.Context(), SettingInstallationCA)
	priv := a.Signer().(*ecdsa.PrivateKey)
	d, err := priv.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(priv)

	var rec installationRecord
	if err := json.Unmarshal(stored, &rec); err != nil {
		t.Fatal(err)
	}
	haystacks := map[string][]byte{"stored value": stored, "sealed key": rec.SealedKey}
	needles := map[string][]byte{
		"D":             d,
		"D hex":         []byte(hex.EncodeToString(d)),
		"D base64":      []byte(base64.StdEncoding.EncodeToString(d)),
		"PKCS8":         pkcs8,
		"PKCS8 base64":  []byte(base64.StdEncoding.EncodeToString(pkcs8)),
		"PRIVATE KEY":   []byte("PRIVATE KEY"),
		"D first half":  d[:16],
		"D second half": d[16:],
	}
	for hn, h := range haystacks {
		for nn, n := range needles {
			if bytes.Contains(h, n) {
				t.Errorf("%s contains %s", hn, nn)
			}
		}
	}
}

func TestInstallationCAWrongMasterKey(t *testing.T) {
	_, st, _ := MustInstallationCA(t)
	other, _ := secret.NewKeyring(bytes.Repeat([]byte{9}, secret.KeySize))
	_, err := LoadOrCreateInstallationCA(t.Context(), st, other, fixedNow)
	if !errors.Is(err, secret.ErrUnknownKey) {
		t.Fatalf("got %v, want %v", err, secret.ErrUnknownKey)
	}
	if !strings.Contains(err.Error(), "same master key") {
		t.Errorf("error %q does not tell what to do", err)
	}
	// The failure must not have replaced the stored CA.
	stored, _ := st.GetSetting(t.Context(), SettingInstallationCA)
	if _, err := parseInstallationCA(stored, mustKeyring(t)); err != nil {
		t.Errorf("stored CA no longer opens with its own key: %v", err)
	}
}

// A master key rotation keeps the CA usable as long as the old key is loaded.
func TestInstallationCAAfterKeyRotation(t *testing.T) {
	a, st, _ := MustInstallationCA(t)
	rotated, _ := secret.NewKeyring(bytes.Repeat([]byte{9}, secret.KeySize))
	old := make([]byte, secret.KeySize)
	for i := range old {
		old[i] = byte(i + 1)
	}
	if err := rotated.AddOldKey(old); err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateInstallationCA(t.Context(), st, rotated, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Certificate().Raw, b.Certificate().Raw) {
		t.Error("got another CA after rotation")
	}
}

func TestInstallationCAConcurrent(t *testing.T) {
	st, kr := newMemStore(), mustKeyring(t)
	const n = 16
	certs := make([][]byte, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			a, err := LoadOrCreateInstallationCA(t.Context(), st, kr, fixedNow)
			if err != nil {
				t.Error(err)
				return
			}
			certs[i] = a.Certificate().Raw
		})
	}
	close(start)
	wg.Wait()
	for i := range certs {
		if !bytes.Equal(certs[i], certs[0]) {
			t.Fatalf("node %d got another CA than node 0", i)
		}
	}
}

// Another node stores its CA between our read and our write: we must adopt
// the winner's CA, not ours.
func TestInstallationCALostRace(t *testing.T) {
	winner, winnerStore, kr := MustInstallationCA(t)
	winnerValue, _ := winnerStore.GetSetting(t.Context(), SettingInstallationCA)

	st := newMemStore()
	st.beforeUpdate = func(settings map[string][]byte) error {
		if _, ok := settings[SettingInstallationCA]; !ok {
			settings[SettingInstallationCA] = winnerValue
		}
		return nil
	}
	a, err := LoadOrCreateInstallationCA(t.Context(), st, kr, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Certificate().Raw, winner.Certificate().Raw) {
		t.Error("loser kept its own CA")
	}
	if got, _ := st.GetSetting(t.Context(), SettingInstallationCA); !bytes.Equal(got, winnerValue) {
		t.Error("loser overwrote the winner's setting")
	}
}

func TestInstallationCAStoreErrors(t *testing.T) {
	boom := errors.New("database on fire")
	st := newMemStore()
	st.beforeUpdate = func(map[string][]byte) error { return boom }
	_, err := LoadOrCreateInstallationCA(t.Context(), st, mustKeyring(t), fixedNow)
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want %v", err, boom)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := LoadOrCreateInstallationCA(ctx, newMemStore(), mustKeyring(t), fixedNow); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want %v", err, context.Canceled)
	}

	bad := failingGetStore{memStore: newMemStore(), err: boom}
	if _, err := LoadOrCreateInstallationCA(t.Context(), bad, mustKeyring(t), fixedNow); !errors.Is(err, boom) {
		t.Errorf("got %v, want %v", err, boom)
	}
	if len(bad.settings) != 0 {
		t.Error("a failed read led to a write")
	}
}

type failingGetStore struct {
	*memStore
	err error
}

func (s failingGetStore) GetSetting(context.Context, string) ([]byte, error) { return nil, s.err }

func TestParseInstallationCAErrors(t *testing.T) {
	_, st, kr := MustInstallationCA(t)
	good, _ := st.GetSetting(t.Context(), SettingInstallationCA)
	var rec installationRecord
	json.Unmarshal(good, &rec)
	edit := func(f func(r *installationRecord)) []byte {
		r := rec
		r.SealedKey = bytes.Clone(rec.SealedKey)
		f(&r)
		out, _ := json.Marshal(r)
		return out
	}
	_, leafPEM := leafCertPEM(t)
	_, otherStore, _ := MustInstallationCA(t)
	otherValue, _ := otherStore.GetSetting(t.Context(), SettingInstallationCA)
	var otherRec installationRecord
	json.Unmarshal(otherValue, &otherRec)

	tests := []struct {
		name    string
		value   []byte
		wantErr string
	}{
		{"not json", []byte("{"), "decode record"},
		{"empty", nil, "decode record"},
		{"version 2", edit(func(r *installationRecord) { r.Version = 2 }), "record version 2"},
		{"no cert", edit(func(r *installationRecord) { r.CertPEM = "" }), "exactly one PEM"},
		{"two certs", edit(func(r *installationRecord) { r.CertPEM += r.CertPEM }), "exactly one PEM"},
		{"garbage cert", edit(func(r *installationRecord) {
			r.CertPEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
		}), "parse certificate"},
		{"leaf cert", edit(func(r *installationRecord) { r.CertPEM = leafPEM }), "not a CA"},
		{"no key", edit(func(r *installationRecord) { r.SealedKey = nil }), "no sealed_key"},
		{"tampered key", edit(func(r *installationRecord) { r.SealedKey[len(r.SealedKey)-1] ^= 1 }), "authentication"},
		{"key of another CA", edit(func(r *installationRecord) { r.SealedKey = otherRec.SealedKey }), "does not match"},
		{"too large", bytes.Repeat([]byte(" "), maxRecordSize+1), "over the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseInstallationCA(tt.value, kr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseInstallationCA(f *testing.F) {
	kr := mustKeyring(f)
	st := newMemStore()
	if _, err := LoadOrCreateInstallationCA(context.Background(), st, kr, fixedNow); err != nil {
		f.Fatal(err)
	}
	good, _ := st.GetSetting(context.Background(), SettingInstallationCA)
	f.Add(good)
	f.Add([]byte(`{"version":1,"cert_pem":"","sealed_key":""}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, value []byte) {
		a, err := parseInstallationCA(value, kr)
		if err != nil {
			return
		}
		if !a.Certificate().IsCA {
			t.Error("accepted a non-CA certificate")
		}
	})
}
