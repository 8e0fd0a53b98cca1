package gatehouse

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// EnrollmentType says whether an enrollment admits one device or a group.
type EnrollmentType string

const (
	EnrollmentIndividual EnrollmentType = "individual" // one registration ID (the enrollment's ID)
	EnrollmentGroup      EnrollmentType = "group"      // every device that proves membership
)

// AttestationType is how a device proves who it is.
type AttestationType string

const (
	AttestSymmetricKey AttestationType = "symmetric_key"
	AttestX509         AttestationType = "x509"
	AttestToken        AttestationType = "token"
)

// Attestation is an enrollment's attestation mechanism. Secret members
// (keys, token) are filled only in the response that created them; the
// store keeps keys sealed (Enrollment.SealedKeys) and tokens hashed.
type Attestation struct {
	Type AttestationType `json:"type"`

	// symmetric_key: base64 keys. For a group they are group keys from
	// which device keys are derived; they never leave the server again.
	PrimaryKey   string `json:"primaryKey,omitempty"`
	SecondaryKey string `json:"secondaryKey,omitempty"`

	// x509: an individual enrollment names the device's certificate (PEM)
	// or its SHA-256 thumbprint; a group names a CA or intermediate
	// certificate (PEM) that device chains lead to. A group CA must be
	// verified (proof of possession) before it admits devices.
	Certificate string `json:"certificate,omitempty"`
	Thumbprint  string `json:"thumbprint,omitempty"`
	Verified    bool   `json:"verified,omitempty"`
	// VerificationCode is the challenge a group CA's owner signs (as the CN
	// of a certificate issued by that CA) to prove possession of its key.
	VerificationCode string `json:"verificationCode,omitempty"`

	// token: a bootstrap token, usable MaxUses times (0 = once for an
	// individual enrollment, unlimited for none: a group token must set
	// it) until ExpiresAt.
	Token     string     `json:"token,omitempty"`
	TokenHash []byte     `json:"-"`
	MaxUses   int        `json:"maxUses,omitempty"`
	Uses      int        `json:"uses"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// CertificatePolicy says whether provisioning issues an X.509 certificate.
type CertificatePolicy string

const (
	CertRequired CertificatePolicy = "required" // the device must send a CSR
	CertOptional CertificatePolicy = "optional" // issued when the device sends a CSR
	CertNone     CertificatePolicy = "none"     // never issued
)

// CredentialPolicy is what an enrollment issues to its devices.
type CredentialPolicy struct {
	Certificate CertificatePolicy `json:"certificate,omitempty"` // default optional
	Validity    Duration          `json:"validity,omitempty"`    // default: the scope's policy
}

// AllocationPolicy picks the endpoint a device uses next.
type AllocationPolicy string

const (
	AllocateStatic AllocationPolicy = "static" // the first endpoint
	AllocateHashed AllocationPolicy = "hashed" // weighted, stable per device
	AllocateCustom AllocationPolicy = "custom" // a webhook decides
)

// Endpoint is a place a device can be sent to (a broker, a hub).
type Endpoint struct {
	Host   string `json:"host"`
	Weight int    `json:"weight,omitempty"` // for hashed allocation; default 1
}

// ValidateEndpointHost checks an endpoint: a host name (printable ASCII;
// an internationalised name in its xn-- form) or address, with an optional
// port.
func ValidateEndpointHost(h string) error {
	host := h
	if hh, port, err := net.SplitHostPort(h); err == nil {
		host = hh
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return Errorf(EInvalid, "endpoint %q: the port must be a number from 1 to 65535", truncate(h, 64))
		}
	}
	printable := !strings.ContainsFunc(h, func(r rune) bool { return r < 0x21 || r > 0x7e })
	if host == "" || len(h) > 253 || !printable || strings.ContainsAny(host, "/ @?#:[]") && net.ParseIP(host) == nil {
		return Errorf(EInvalid, "endpoint host %q is not a host name or address", truncate(h, 64))
	}
	return nil
}

// Allocation configures how an enrollment assigns devices to endpoints.
type Allocation struct {
	Policy    AllocationPolicy `json:"policy,omitempty"` // default static
	Endpoints []Endpoint       `json:"endpoints,omitempty"`
	Webhook   *Webhook         `json:"webhook,omitempty"` // for custom
}

// ReprovisionPolicy says what happens when a provisioned device registers again.
type ReprovisionPolicy string

const (
	ReprovisionMigrate ReprovisionPolicy = "migrate" // keep the device's data
	ReprovisionReset   ReprovisionPolicy = "reset"   // reset tags and config to the enrollment's initial ones
	ReprovisionNever   ReprovisionPolicy = "never"   // refuse; an operator must act
)

// Webhook is an outbound call an enrollment makes during provisioning. Its
// requests carry an HMAC-SHA256 signature made with Secret (sealed at rest).
type Webhook struct {
	URL     string   `json:"url"`
	Secret  string   `json:"secret,omitempty"` // write only
	Timeout Duration `json:"timeout,omitempty"`
}

// Enrollment admits devices to a scope.
type Enrollment struct {
	ID               string            `json:"id"`
	Scope            string            `json:"scope"`
	Type             EnrollmentType    `json:"type"`
	Attestation      Attestation       `json:"attestation"`
	Enabled          bool              `json:"enabled"`
	DeviceIDTemplate string            `json:"deviceIdTemplate,omitempty"` // default: the registration ID
	InitialTags      map[string]string `json:"initialTags,omitempty"`
	InitialConfig    json.RawMessage   `json:"initialConfig,omitempty"`
	Credentials      CredentialPolicy  `json:"credentials"`
	Allocation       Allocation        `json:"allocation"`
	Reprovision      ReprovisionPolicy `json:"reprovision,omitempty"` // default migrate
	PreProvision     *Webhook          `json:"preProvisionWebhook,omitempty"`
	MaxRegistrations int               `json:"maxRegistrations,omitempty"` // 0: unlimited
	// Registrations counts the devices the enrollment created. It and
	// Attestation.Uses move with registrations (Tx.CountEnrollmentUse),
	// UpdatedAt and ETag only with the enrollment's settings: an operator's
	// If-Match stays good while devices register.
	Registrations int        `json:"registrations"`
	ExpiresAt     *time.Time `json:"expiresAt,omitempty"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	ETag          string     `json:"etag"`
	// SealedSecrets holds the enrollment's secrets (symmetric keys, webhook
	// secrets) sealed by the master key; never serialised.
	SealedSecrets []byte `json:"-"`
}

// EnrollmentUse is what one registration adds to its enrollment's counts
// (see Tx.CountEnrollmentUse).
type EnrollmentUse struct {
	Scope, ID string
	// ETag is the etag of the settings the registration was decided with:
	// the count is refused if they changed since.
	ETag string
	// Registrations and Uses are added to the enrollment's Registrations
	// and Attestation.Uses.
	Registrations, Uses int
	// MaxRegistrations and MaxUses, if above 0, bound the counts after
	// the addition, each only when something is added to it (a count an
	// operator's lower limit left above it does not block the rest). They
	// are the settings' own limits, which the etag vouches for.
	MaxRegistrations, MaxUses int
}

// Refused is the error of a CountEnrollmentUse that changed nothing, for
// an enrollment found with this etag and these counts.
func (u EnrollmentUse) Refused(etag string, registrations, uses int) error {
	switch {
	case etag != u.ETag:
		return Errorf(EPreconditionFailed, "enrollment %q has changed since it was read (etag %q, not %q)", u.ID, etag, u.ETag)
	case u.Registrations > 0 && u.MaxRegistrations > 0 && registrations+u.Registrations > u.MaxRegistrations:
		return Errorf(EQuotaExceeded, "enrollment %q admits no more devices (%d of %d)", u.ID, registrations, u.MaxRegistrations)
	case u.Uses > 0 && u.MaxUses > 0 && uses+u.Uses > u.MaxUses:
		return Errorf(EQuotaExceeded, "the token of enrollment %q has been used %d of %d times", u.ID, uses, u.MaxUses)
	}
	// The row changed between the UPDATE and this look: impossible under
	// the transaction's lock.
	return fmt.Errorf("enrollment %q: count refused, yet etag and counts allow it", u.ID)
}

// EnrollmentFilter selects enrollments of one scope, ordered by ID.
type EnrollmentFilter struct {
	Scope       string
	Type        EnrollmentType
	Attestation AttestationType
	After       string
	Limit       int
}

// RegistrationStatus follows the DPS vocabulary.
type RegistrationStatus string

const (
	RegAssigned   RegistrationStatus = "assigned"
	RegAssigning  RegistrationStatus = "assigning"
	RegFailed     RegistrationStatus = "failed"
	RegDisabled   RegistrationStatus = "disabled"
	RegUnassigned RegistrationStatus = "unassigned"
)

// Registration substatus values (DPS).
const (
	SubInitialAssignment     = "initialAssignment"
	SubDeviceDataMigrated    = "deviceDataMigrated"
	SubDeviceDataReset       = "deviceDataReset"
	SubReprovisionedToInital = "reprovisionedToInitialAssignment"
)

// Registration is the record of a device's (latest) registration.
type Registration struct {
	Scope          string             `json:"scope"`
	RegistrationID string             `json:"registrationId"`
	EnrollmentID   string             `json:"enrollmentId"`
	DeviceID       string             `json:"deviceId,omitempty"`
	OperationID    string             `json:"operationId"`
	Status         RegistrationStatus `json:"status"`
	Substatus      string             `json:"substatus,omitempty"`
	AssignedHub    string             `json:"assignedHub,omitempty"`
	ErrorCode      string             `json:"errorCode,omitempty"`
	ErrorMessage   string             `json:"errorMessage,omitempty"`
	Attempts       int                `json:"attempts"`
	CreatedAt      time.Time          `json:"createdAt"`
	UpdatedAt      time.Time          `json:"updatedAt"`
	ETag           string             `json:"etag"`
}

// Provisioning error codes. The device-facing message never says which
// part of a secret was wrong.
const (
	EEnrollmentNotFound = "enrollment_not_found"
	EAttestationFailed  = "attestation_failed"
	EEnrollmentDisabled = "enrollment_disabled"
	EDeviceQuarantined  = "device_quarantined"
	EDeviceDisabled     = "device_disabled"
	EReprovisionRefused = "reprovision_refused"
	EQuotaExceeded      = "quota_exceeded"
	EEnrollmentExpired  = "enrollment_expired"
	EWebhookDenied      = "webhook_denied"
	EWebhookFailed      = "webhook_failed"
)

// Enrollment events.
const (
	EventEnrollmentCreated = "enrollment.created"
	EventEnrollmentUpdated = "enrollment.updated"
	EventEnrollmentDeleted = "enrollment.deleted"
	EventDeviceProvisioned = "device.provisioned"
	EventDeviceAuthFailed  = "device.auth_failed"
)

var templateVar = regexp.MustCompile(`\{[^}]*\}`)

// DeviceIDFor applies an enrollment's device ID template to a registration
// ID: "{registrationId}" is replaced, "{enrollmentId}" too; other braces
// are errors. The result must be a valid device ID.
func (e *Enrollment) DeviceIDFor(registrationID string) (string, error) {
	if e.DeviceIDTemplate == "" {
		return registrationID, ValidateDeviceID(registrationID)
	}
	var bad string
	id := templateVar.ReplaceAllStringFunc(e.DeviceIDTemplate, func(v string) string {
		switch v {
		case "{registrationId}":
			return registrationID
		case "{enrollmentId}":
			return e.ID
		}
		bad = v
		return v
	})
	if bad != "" {
		return "", Errorf(EInvalid, "device ID template uses %s; only {registrationId} and {enrollmentId} exist", bad)
	}
	return id, ValidateDeviceID(id)
}
