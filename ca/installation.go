package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/secret"
)

const (
	// SettingInstallationCA is the setting that holds the installation CA.
	SettingInstallationCA = "installation_ca"

	// installationKeyAAD names the sealed installation CA key, so that the
	// blob opens only as this record.
	installationKeyAAD = "installation-ca-key"

	installationCAName     = "Gatehouse Installation Root CA"
	installationCAValidity = 10 * 365 * 24 * time.Hour

	// installationCAMaxPathLen leaves room for one level of issuing CAs (per
	// scope) between the root and the leaves.
	installationCAMaxPathLen = 1

	recordVersion = 1
	maxRecordSize = 64 << 10
)

// SettingStore is the part of the store that the installation CA needs.
// gatehouse.Store meets it.
type SettingStore interface {
	GetSetting(ctx context.Context, key string) ([]byte, error)
	Update(ctx context.Context, fn func(tx gatehouse.Tx) error) error
}

var _ SettingStore = gatehouse.Store(nil)

// installationRecord is how the installation CA is stored, as JSON in the
// SettingInstallationCA setting. The private key is there only sealed.
type installationRecord struct {
	Version int    `json:"version"`
	CertPEM string `json:"cert_pem"`
	// SealedKey is the PKCS #8 DER private key, sealed by the keyring with
	// aad "installation-ca-key".
	SealedKey []byte `json:"sealed_key"`
}

// LoadOrCreateInstallationCA returns the installation root CA. It reads it
// from the store, or, on the first start of the installation, creates an
// ECDSA P-256 root valid for ten years and stores it. When several nodes
// start at once each may create one, but only the first stored wins and all
// of them use it. The private key is stored only sealed by kr, so every node
// must share the master key. now may be nil for time.Now.
func LoadOrCreateInstallationCA(ctx context.Context, st SettingStore, kr *secret.Keyring, now func() time.Time) (*Authority, error) {
	if now == nil {
		now = time.Now
	}
	stored, err := st.GetSetting(ctx, SettingInstallationCA)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		stored, err = createInstallationCA(ctx, st, kr, now())
	}
	if err != nil {
		return nil, fmt.Errorf("installation CA: %w", err)
	}
	a, err := parseInstallationCA(stored, kr)
	if err != nil {
		return nil, fmt.Errorf("installation CA (setting %q): %w", SettingInstallationCA, err)
	}
	return a, nil
}

// createInstallationCA makes a new root and stores it unless another node
// got there first, and returns the stored record, ours or the winner's.
func createInstallationCA(ctx context.Context, st SettingStore, kr *secret.Keyring, now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	subject := pkix.Name{CommonName: installationCAName, Organization: []string{"Gatehouse"}}
	cert, err := newSelfSigned(subject, key, now, installationCAValidity, installationCAMaxPathLen)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	sealed, err := kr.Seal(der, []byte(installationKeyAAD))
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	value, err := json.Marshal(installationRecord{
		Version:   recordVersion,
		CertPEM:   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		SealedKey: sealed,
	})
	if err != nil {
		return nil, err
	}
	var stored []byte
	err = st.Update(ctx, func(tx gatehouse.Tx) error {
		var err error
		stored, err = tx.PutSettingIfAbsent(SettingInstallationCA, value)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return stored, nil
}

// parseInstallationCA decodes a stored installation CA record and opens its
// key.
func parseInstallationCA(value []byte, kr *secret.Keyring) (*Authority, error) {
	cert, sealed, err := parseInstallationRecord(value)
	if err != nil {
		return nil, err
	}
	der, err := kr.Open(sealed, []byte(installationKeyAAD))
	if errors.Is(err, secret.ErrUnknownKey) {
		return nil, fmt.Errorf("key: %w; every node must use the same master key (GATEHOUSE_MASTER_KEY_FILE), and after a rotation the old key must still be loaded", err)
	} else if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	defer der.Wipe()
	priv, err := x509.ParsePKCS8PrivateKey(der.Reveal())
	if err != nil {
		return nil, errors.New("key: the opened key is not a PKCS #8 private key")
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key: a %T cannot sign", priv)
	}
	return New(cert, signer)
}

// parseInstallationRecord decodes the JSON record and its certificate,
// without opening the key.
func parseInstallationRecord(value []byte) (*x509.Certificate, []byte, error) {
	if len(value) > maxRecordSize {
		return nil, nil, fmt.Errorf("record is %d bytes, over the %d limit", len(value), maxRecordSize)
	}
	var rec installationRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return nil, nil, fmt.Errorf("decode record: %w", err)
	}
	if rec.Version != recordVersion {
		return nil, nil, fmt.Errorf("record version %d; this build reads version %d", rec.Version, recordVersion)
	}
	block, rest := pem.Decode([]byte(rec.CertPEM))
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, nil, errors.New("cert_pem must hold exactly one PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse certificate: %w", err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, nil, errors.New("the stored certificate is not a CA certificate")
	}
	if len(rec.SealedKey) == 0 {
		return nil, nil, errors.New("record has no sealed_key")
	}
	return cert, rec.SealedKey, nil
}
