package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
)

// cachedCA is a scope's unsealed CA, with the digest of the stored
// certificate it was opened from: a recheck that finds the same digest
// keeps it, one that finds another (an import on another node) opens the
// new one.
type cachedCA struct {
	digest [32]byte
	auth   *ca.Authority
}

func scopeKeyAAD(scope string) []byte { return []byte("scope-ca-key:" + scope) }

// newScopeCA creates a scope's issuing CA, signed by the installation root,
// and stores it inside tx.
func (s *Service) newScopeCA(tx gatehouse.Tx, ev *eventLog, scope, actor string, now time.Time) error {
	if s.root == nil || s.keyring == nil {
		return nil // a registry without a CA (tests of the pure registry)
	}
	auth, err := ca.NewScopeCA(s.root, scope, now)
	if err != nil {
		return fmt.Errorf("create scope CA: %w", err)
	}
	rec, err := s.sealCA(scope, auth, false, now)
	if err != nil {
		return err
	}
	if err := tx.PutScopeCA(rec); err != nil {
		return err
	}
	return ev.append(scope, gatehouse.EventCACreated, actor, "scopes/"+scope+"/ca", now, caEvent(rec, auth))
}

func (s *Service) sealCA(scope string, auth *ca.Authority, imported bool, now time.Time) (*gatehouse.ScopeCA, error) {
	keyDER, err := ca.MarshalKey(auth.Signer())
	if err != nil {
		return nil, fmt.Errorf("encode scope CA key: %w", err)
	}
	sealed, err := s.keyring.Seal(keyDER, scopeKeyAAD(scope))
	clear(keyDER)
	if err != nil {
		return nil, fmt.Errorf("seal scope CA key: %w", err)
	}
	rec := &gatehouse.ScopeCA{Scope: scope, CertDER: auth.Certificate().Raw, SealedKey: sealed, Imported: imported, CreatedAt: now}
	for _, c := range auth.Chain() {
		rec.ChainDER = append(rec.ChainDER, c.Raw)
	}
	return rec, nil
}

// EnsureScopeCAs gives every scope that has no issuing CA one (scopes made
// before the CA existed). Safe on several nodes: the second writer's CA
// replaces nothing because each scope is checked inside the transaction.
func (s *Service) EnsureScopeCAs(ctx context.Context) error {
	scopes, err := s.store.ListScopes(ctx)
	if err != nil {
		return err
	}
	for _, sc := range scopes {
		if _, err := s.store.GetScopeCA(ctx, sc.ID); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			if err != nil {
				return err
			}
			continue
		}
		now := s.timestamp()
		err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
			return s.newScopeCA(tx, ev, sc.ID, gatehouse.SystemActor, now)
		})
		s.cas.forget(sc.ID)
		if err != nil {
			return fmt.Errorf("scope %s: %w", sc.ID, err)
		}
	}
	return nil
}

// authority returns the scope's issuing CA with its key unsealed.
func (s *Service) authority(ctx context.Context, scope string) (*ca.Authority, error) {
	c, ok, due := s.cas.get(scope)
	if !due {
		return c.auth, nil
	}
	checked := time.Now()
	rec, err := s.store.GetScopeCA(ctx, scope)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "scope %q has no certificate authority", scope)
	} else if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(rec.CertDER)
	if ok && c.digest == digest {
		s.cas.put(scope, c, checked)
		return c.auth, nil
	}
	auth, err := s.openCA(rec)
	if err != nil {
		return nil, err
	}
	s.cas.put(scope, cachedCA{digest: digest, auth: auth}, checked)
	return auth, nil
}

func (s *Service) openCA(rec *gatehouse.ScopeCA) (*ca.Authority, error) {
	if s.keyring == nil {
		return nil, fmt.Errorf("scope %s: no keyring configured", rec.Scope)
	}
	cert, err := x509.ParseCertificate(rec.CertDER)
	if err != nil {
		return nil, fmt.Errorf("scope %s CA certificate: %w", rec.Scope, err)
	}
	var chain []*x509.Certificate
	for _, der := range rec.ChainDER {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("scope %s CA chain: %w", rec.Scope, err)
		}
		chain = append(chain, c)
	}
	keyDER, err := s.keyring.Open(rec.SealedKey, scopeKeyAAD(rec.Scope))
	if err != nil {
		return nil, fmt.Errorf("scope %s CA key: %w", rec.Scope, err)
	}
	signer, err := ca.ParseKey(keyDER.Reveal())
	keyDER.Wipe()
	if err != nil {
		return nil, fmt.Errorf("scope %s CA key: %w", rec.Scope, err)
	}
	return ca.New(cert, signer, chain...)
}

// CAInfo describes a scope's issuing CA.
type CAInfo struct {
	Scope      string    `json:"scope"`
	Subject    string    `json:"subject"`
	Issuer     string    `json:"issuer"`
	NotBefore  time.Time `json:"notBefore"`
	NotAfter   time.Time `json:"notAfter"`
	Thumbprint string    `json:"thumbprint"`
	Imported   bool      `json:"imported"`
	Chain      string    `json:"chain,omitempty"` // PEM: the issuing CA first, through the root
}

func caInfo(rec *gatehouse.ScopeCA, auth *ca.Authority) *CAInfo {
	c := auth.Certificate()
	sum := sha256.Sum256(c.Raw)
	return &CAInfo{Scope: rec.Scope, Subject: c.Subject.String(), Issuer: c.Issuer.String(), NotBefore: c.NotBefore.UTC(),
		NotAfter: c.NotAfter.UTC(), Thumbprint: fmt.Sprintf("%x", sum), Imported: rec.Imported, Chain: string(auth.ChainPEM())}
}

// caEvent is the data of ca.created and ca.imported: the CA's description
// without the PEM chain (GET .../ca has it).
func caEvent(rec *gatehouse.ScopeCA, auth *ca.Authority) *CAInfo {
	info := caInfo(rec, auth)
	info.Chain = ""
	return info
}

// CA returns a scope's issuing CA.
func (s *Service) CA(ctx context.Context, p *gatehouse.Principal, scope string) (*CAInfo, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	auth, err := s.authority(ctx, scope)
	if err != nil {
		return nil, err
	}
	rec, err := s.store.GetScopeCA(ctx, scope)
	if err != nil {
		return nil, err
	}
	return caInfo(rec, auth), nil
}

// CAImport is an operator's own CA for a scope: PEM certificate and private
// key, and optionally the chain up to the operator's root.
type CAImport struct {
	Certificate string `json:"certificate"`
	PrivateKey  string `json:"privateKey"`
	Chain       string `json:"chain,omitempty"`
}

// ImportCA replaces a scope's issuing CA with the operator's. Certificates
// issued by the previous CA stop verifying in this scope.
func (s *Service) ImportCA(ctx context.Context, p *gatehouse.Principal, scope string, req CAImport) (*CAInfo, error) {
	if err := p.Authorize(scope, gatehouse.RoleAdmin); err != nil {
		return nil, err
	}
	if s.keyring == nil {
		return nil, gatehouse.Errorf(gatehouse.EUnavailable, "this node has no certificate authority configured")
	}
	now := s.timestamp()
	auth, err := ca.ParseImportedCA([]byte(req.Certificate), []byte(req.PrivateKey), []byte(req.Chain), now)
	if err != nil {
		return nil, err
	}
	rec, err := s.sealCA(scope, auth, true, now)
	if err != nil {
		return nil, err
	}
	info := caInfo(rec, auth)
	err = s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		if _, err := tx.GetScope(scope); err != nil {
			return notFoundScope(err, scope)
		}
		if err := tx.PutScopeCA(rec); err != nil {
			return err
		}
		return ev.append(scope, gatehouse.EventCAImported, p.Actor(), "scopes/"+scope+"/ca", now, caEvent(rec, auth))
	})
	s.cas.forget(scope)
	if err != nil {
		return nil, err
	}
	// A fresh CRL signed by the new CA.
	if err := s.refreshCRL(ctx, scope); err != nil {
		s.log.Error("refresh CRL after CA import", "scope", scope, "err", err)
	}
	return info, nil
}

// chainPEM is used by tests and tools that need the PEM bundle alone.
func pemCert(der []byte) []byte {
	var b bytes.Buffer
	pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	return b.Bytes()
}

// ScopeAuthority returns the scope's issuing CA for signing (the
// provisioning core signs outside its transaction).
func (s *Service) ScopeAuthority(ctx context.Context, scope string) (*ca.Authority, error) {
	return s.authority(ctx, scope)
}
