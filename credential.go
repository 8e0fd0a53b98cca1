package gatehouse

import (
	"time"
)

// CredentialKind is what a device authenticates with.
type CredentialKind string

const (
	CredentialX509         CredentialKind = "x509"          // an operational certificate from the scope's CA
	CredentialSymmetricKey CredentialKind = "symmetric_key" // a device key (primary or secondary slot)
	CredentialToken        CredentialKind = "token"         // a bootstrap token
)

// CredentialStatus is where a credential is in its lifecycle.
type CredentialStatus string

const (
	CredentialActive     CredentialStatus = "active"     // authenticates
	CredentialSuperseded CredentialStatus = "superseded" // replaced; its overlap window has passed
	CredentialRevoked    CredentialStatus = "revoked"    // withdrawn before its time
	CredentialExpired    CredentialStatus = "expired"    // past notAfter
)

// Credential is a device credential as the registry records it. For X.509
// the ID is the certificate's serial number in lowercase hex; Secret holds
// material the server must read back (a symmetric key), sealed by the
// master key, and never leaves the server in a listing.
type Credential struct {
	ID               string           `json:"id"`
	Scope            string           `json:"scope"`
	DeviceID         string           `json:"deviceId"`
	Kind             CredentialKind   `json:"kind"`
	Status           CredentialStatus `json:"status"`
	Serial           string           `json:"serial,omitempty"`
	Thumbprint       string           `json:"thumbprint,omitempty"` // SHA-256 of the DER certificate, hex
	Slot             string           `json:"slot,omitempty"`       // primary or secondary, for symmetric keys
	NotBefore        *time.Time       `json:"notBefore,omitempty"`
	NotAfter         *time.Time       `json:"notAfter,omitempty"`
	CreatedAt        time.Time        `json:"createdAt"`
	RetireAt         *time.Time       `json:"retireAt,omitempty"` // end of the overlap after a renewal
	RevokedAt        *time.Time       `json:"revokedAt,omitempty"`
	RevocationReason string           `json:"revocationReason,omitempty"`
	ExpiryNotifiedAt *time.Time       `json:"expiryNotifiedAt,omitempty"`
	CertDER          []byte           `json:"-"`
	Secret           []byte           `json:"-"`
}

// EffectiveStatus is the status at time now: an active credential past its
// overlap window counts as superseded, one past notAfter as expired, even
// before the sweeper has written that down.
func (c *Credential) EffectiveStatus(now time.Time) CredentialStatus {
	if c.Status != CredentialActive {
		return c.Status
	}
	if c.NotAfter != nil && !now.Before(*c.NotAfter) {
		return CredentialExpired
	}
	if c.RetireAt != nil && !now.Before(*c.RetireAt) {
		return CredentialSuperseded
	}
	return CredentialActive
}

// CredentialFilter selects credentials of one scope, ordered by ID. Empty
// fields match everything; the fields set must all match.
type CredentialFilter struct {
	Scope          string
	DeviceID       string
	Kinds          []CredentialKind   // any of these
	Statuses       []CredentialStatus // any of these, as stored (not EffectiveStatus)
	ExpiringBefore *time.Time         // NotAfter strictly before this time; a credential without NotAfter never matches
	After          string             // keyset cursor: the last ID of the previous page
	Limit          int                // <= 0 means 100
}

// ScopeCA is a scope's issuing CA as stored: its certificate, the chain up
// to (and including) the root, and its private key sealed by the master key.
type ScopeCA struct {
	Scope     string    `json:"scope"`
	CertDER   []byte    `json:"-"`
	ChainDER  [][]byte  `json:"-"` // issuer of CertDER first, root last
	SealedKey []byte    `json:"-"`
	Imported  bool      `json:"imported"`
	CreatedAt time.Time `json:"createdAt"`
}

// CRL is a scope's current certificate revocation list.
type CRL struct {
	Scope      string    `json:"scope"`
	Number     int64     `json:"number"`
	DER        []byte    `json:"-"`
	ThisUpdate time.Time `json:"thisUpdate"`
	NextUpdate time.Time `json:"nextUpdate"`
}

// ScopePolicy is a scope's credential policy. Zero fields take the defaults.
type ScopePolicy struct {
	CertValidity   Duration `json:"certValidity,omitempty"`   // default 90 days
	RenewalOverlap Duration `json:"renewalOverlap,omitempty"` // default 24 h
	ExpiryLeadTime Duration `json:"expiryLeadTime,omitempty"` // default 14 days
	// MQTT holds the scope's MQTT settings (device topic templates); nil
	// for the defaults.
	MQTT *MQTTPolicy `json:"mqtt,omitempty"`
}

// TopicPolicy returns the scope's device topic spaces (the default when
// none are set). A stored policy was validated; should it not parse, the
// default is returned with the error.
func (p ScopePolicy) TopicPolicy() (*TopicPolicy, error) {
	if p.MQTT == nil {
		return DefaultTopicPolicy, nil
	}
	tp, err := ParseTopicPolicy(p.MQTT.TopicTemplates)
	if err != nil {
		return DefaultTopicPolicy, err
	}
	return tp, nil
}

// Policy defaults.
const (
	DefaultCertValidity   = 90 * 24 * time.Hour
	DefaultRenewalOverlap = 24 * time.Hour
	DefaultExpiryLeadTime = 14 * 24 * time.Hour
	MaxCertValidity       = 5 * 365 * 24 * time.Hour
)

// WithDefaults fills zero fields.
func (p ScopePolicy) WithDefaults() ScopePolicy {
	if p.CertValidity == 0 {
		p.CertValidity = Duration(DefaultCertValidity)
	}
	if p.RenewalOverlap == 0 {
		p.RenewalOverlap = Duration(DefaultRenewalOverlap)
	}
	if p.ExpiryLeadTime == 0 {
		p.ExpiryLeadTime = Duration(DefaultExpiryLeadTime)
	}
	return p
}

// Validate checks the policy's bounds.
func (p ScopePolicy) Validate() error {
	switch {
	case p.CertValidity < 0 || time.Duration(p.CertValidity) > MaxCertValidity:
		return Errorf(EInvalid, "certValidity must be between 1h and %s", MaxCertValidity)
	case p.CertValidity != 0 && time.Duration(p.CertValidity) < time.Hour:
		return Errorf(EInvalid, "certValidity must be at least 1h")
	case p.RenewalOverlap < 0 || time.Duration(p.RenewalOverlap) > 30*24*time.Hour:
		return Errorf(EInvalid, "renewalOverlap must be between 0 and 720h")
	case p.ExpiryLeadTime < 0 || time.Duration(p.ExpiryLeadTime) > 365*24*time.Hour:
		return Errorf(EInvalid, "expiryLeadTime must be between 0 and 8760h")
	}
	if p.MQTT != nil {
		if _, err := ParseTopicPolicy(p.MQTT.TopicTemplates); err != nil {
			return Errorf(EInvalid, "mqtt.topicTemplates: %s", ErrorMessage(err))
		}
	}
	return nil
}

// Credential events.
const (
	EventCredentialIssued   = "credential.issued"
	EventCredentialRenewed  = "credential.renewed"
	EventCredentialRevoked  = "credential.revoked"
	EventCredentialExpiring = "credential.expiring"
	EventCredentialExpired  = "credential.expired"
	EventCACreated          = "ca.created"
	EventCAImported         = "ca.imported"
)

// Credential error codes.
const (
	ECSRInvalid       = "csr_invalid"        // malformed CSR, or its signature does not verify
	EUnsupportedKey   = "unsupported_key"    // key algorithm or size not accepted
	EInvalidPEM       = "invalid_pem"        // not PEM, or not the expected block
	EAlreadyRevoked   = "already_revoked"    // the credential was revoked before
	EInvalidCA        = "invalid_ca"         // an imported CA is not usable as one
	ECredentialDenied = "credential_refused" // the device's state forbids issuing
)

// RevocationReasons maps RFC 5280 reason names to their codes.
var RevocationReasons = map[string]int{
	"unspecified": 0, "keyCompromise": 1, "cACompromise": 2, "affiliationChanged": 3,
	"superseded": 4, "cessationOfOperation": 5, "certificateHold": 6, "removeFromCRL": 8,
	"privilegeWithdrawn": 9, "aACompromise": 10,
}
