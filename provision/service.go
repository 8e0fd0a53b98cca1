package provision

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/metrics"
	"github.com/gatehouse-iot/gatehouse/ratelimit"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// Request is one registration attempt, as a dialect understood it. Exactly
// one proof is set: SAS, Token, or a TLS client chain in Chain.
type Request struct {
	Scope          string
	RegistrationID string
	EnrollmentID   string // optional: names the group (CoAP PSK identities do)
	Dialect        string // native, dps, est, mqtt, coap: recorded and counted
	Source         string // the client's address, for rate limits

	SAS   string              // a DPS SharedAccessSignature token
	Token string              // a bootstrap token
	Chain []*x509.Certificate // the TLS client chain, leaf first

	CSR []byte // PEM or DER PKCS#10; required or optional per enrollment
	// RequireCertificate refuses, before anything is written, when no
	// certificate would be issued (EST enrolls exist only to get one).
	RequireCertificate bool
	Payload            json.RawMessage // custom data the device sent (passed to webhooks)
	Force              bool            // forceRegistration
}

// Result is a successful registration.
type Result struct {
	Registration *gatehouse.Registration
	Device       *gatehouse.Device
	Certificate  []byte              // DER of the issued certificate, if any
	Chain        []*x509.Certificate // the issuing CA through the root
	AssignedHub  string
	Payload      json.RawMessage // what a custom allocation webhook returned for the device
}

// CertificatePEM returns the issued certificate followed by its chain.
func (r *Result) CertificatePEM() []byte {
	if r.Certificate == nil {
		return nil
	}
	out := pemCert(r.Certificate)
	for _, c := range r.Chain {
		out = append(out, pemCert(c.Raw)...)
	}
	return out
}

// Service is the provisioning core. It is safe for concurrent use.
type Service struct {
	store    gatehouse.Reader
	reg      *registry.Service
	now      func() time.Time
	log      *slog.Logger
	client   *http.Client
	bySource *ratelimit.Limiter
	byID     *ratelimit.Limiter
	lockout  *ratelimit.Lockout // per source and ID
	// idLockout counts an ID's failures from every source (guard.go).
	idLockout *ratelimit.Lockout

	maxSASLifetime time.Duration
	defaultHub     string // assigned when an enrollment names no endpoint

	mu      sync.Mutex
	secrets map[string]cachedSecrets // scope/enrollment -> unsealed keys, by etag
	groups  map[string]groupList     // scope/attestation type -> the last read of its groups
	// refresh joins concurrent reads of one scope's groups of one type
	// into one.
	refresh singleflight.Group
}

type cachedSecrets struct {
	digest  [32]byte
	secrets *registry.EnrollmentSecrets
}

// groupCacheTTL bounds how long a group changed on another node can be
// used as it was by attestation on this one (a change made on this node
// empties the cache at once, and a new group is looked for on a miss: see
// matchGroups). Disabling is never late: the commit counts the
// registration only if the enrollment's etag is still the copy's, and
// reads it again otherwise.
const groupCacheTTL = time.Second

// groupRefreshAfter is how old the cached groups must be for a failed
// attestation to read them again.
const groupRefreshAfter = 100 * time.Millisecond

// Option configures a Service.
type Option func(*Service)

// WithClock sets the time source.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithHTTPClient sets the client for webhooks (tests trust their servers).
func WithHTTPClient(c *http.Client) Option { return func(s *Service) { s.client = c } }

// WithRateLimits sets the per-source and per-registration-ID limits
// (requests per second and burst).
func WithRateLimits(perSource float64, sourceBurst int, perID float64, idBurst int) Option {
	return func(s *Service) {
		s.bySource = ratelimit.New(perSource, sourceBurst, 100_000, s.now)
		s.byID = ratelimit.New(perID, idBurst, 100_000, s.now)
	}
}

// WithDefaultHub sets the hub (host[:port]) a device is assigned when its
// enrollment names no endpoint, typically this installation's MQTT broker
// as devices reach it. DPS clients build their hub connection from
// assignedHub; without a default it is left out.
func WithDefaultHub(hub string) Option { return func(s *Service) { s.defaultHub = hub } }

// noRedirects makes a webhook's 3xx its answer: a redirect would send the
// signed request to an address that was never checked as a webhook URL
// (plain http, an internal host).
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// New returns the provisioning core over the registry.
func New(store gatehouse.Reader, reg *registry.Service, opts ...Option) *Service {
	s := &Service{store: store, reg: reg, now: time.Now, log: slog.New(slog.DiscardHandler),
		client: &http.Client{Timeout: 30 * time.Second, CheckRedirect: noRedirects}, maxSASLifetime: 366 * 24 * time.Hour,
		secrets: map[string]cachedSecrets{}, groups: map[string]groupList{}}
	s.bySource = ratelimit.New(200, 400, 100_000, s.now)
	s.byID = ratelimit.New(1, 10, 100_000, s.now)
	for _, o := range opts {
		o(s)
	}
	s.lockout = ratelimit.NewLockout(sourceLockoutFailures, lockoutBase, lockoutMax, 100_000, s.now)
	s.idLockout = ratelimit.NewLockout(idLockoutFailures, lockoutBase, lockoutMax, 100_000, s.now)
	return s
}

// RetryError says a request was refused for now and when to try again.
type RetryError struct {
	Err   error
	After time.Duration
}

func (e *RetryError) Error() string { return e.Err.Error() }
func (e *RetryError) Unwrap() error { return e.Err }

// RetryAfter returns how long the caller should wait, or 0.
func RetryAfter(err error) time.Duration {
	var r *RetryError
	if errors.As(err, &r) {
		return r.After
	}
	return 0
}

func rateLimited(after time.Duration, msg string) error {
	if after < time.Second {
		after = time.Second
	}
	return &RetryError{Err: gatehouse.Errorf(gatehouse.ERateLimited, "%s; retry after %d s", msg, int(after.Seconds()+0.5)), After: after}
}

// Register runs one registration.
func (s *Service) Register(ctx context.Context, req Request) (res *Result, err error) {
	defer func(start time.Time) { metrics.Observe(req.Dialect, gatehouse.ErrorCode(err), time.Since(start)) }(time.Now())
	if err := gatehouse.ValidateScopeID(req.Scope); err != nil {
		return nil, gatehouse.Errorf(gatehouse.EEnrollmentNotFound, "no enrollment matches this device")
	}
	if err := gatehouse.ValidateDeviceID(req.RegistrationID); err != nil {
		return nil, err
	}
	if len(req.Payload) > 16<<10 {
		return nil, gatehouse.Errorf(gatehouse.ETooLarge, "payload is larger than 16 KiB")
	}
	if req.Source != "" {
		if ok, after := s.bySource.Allow("src:" + req.Source); !ok {
			return nil, rateLimited(after, "too many registrations from this address")
		}
	}
	g := newGuard(req.Scope+"/"+req.RegistrationID, req.Source)
	if ok, after := s.byID.Allow(g.pair); !ok {
		return nil, rateLimited(after, "too many registrations for this registration ID")
	}
	if locked, after := s.lockedOut(g); locked {
		return nil, rateLimited(after, "locked out after repeated failed attestations")
	}
	var csr *x509.CertificateRequest
	if len(req.CSR) > 0 {
		var err error
		if csr, err = ca.ParseCSR(req.CSR); err != nil {
			return nil, err
		}
	}
	m, err := s.attest(ctx, req)
	if err != nil {
		s.attestationFailed(ctx, req, g, err)
		return nil, err
	}
	operationID := newOperationID()
	res, err = s.provision(ctx, req, m, csr, operationID)
	if err != nil {
		switch gatehouse.ErrorCode(err) {
		case gatehouse.EInternal, gatehouse.EUnavailable:
		default:
			if rerr := s.reg.RecordRegistrationFailure(ctx, req.Scope, req.RegistrationID, m.enrollment.ID, operationID, err); rerr != nil {
				s.log.Error("record registration failure", "scope", req.Scope, "device_id", req.RegistrationID, "err", rerr)
			}
		}
		return nil, err
	}
	s.succeeded(g)
	return res, nil
}

// attestationFailed counts a failed proof; when the failures lock the ID
// out, a device.auth_failed event records it (one per lockout, so that a
// flood of bad requests cannot flood the event log).
func (s *Service) attestationFailed(ctx context.Context, req Request, g guard, err error) {
	if code := gatehouse.ErrorCode(err); code != gatehouse.EAttestationFailed && code != gatehouse.EEnrollmentNotFound {
		return
	}
	lockedFor := s.failed(g)
	s.log.Info("attestation failed", "scope", req.Scope, "device_id", req.RegistrationID, "dialect", req.Dialect,
		"source", req.Source, "reason", failureReason(err))
	if lockedFor > 0 {
		if err := s.reg.RecordAuthFailure(ctx, req.Scope, req.RegistrationID, req.Dialect, req.Source, lockedFor); err != nil {
			s.log.Error("record auth failure", "scope", req.Scope, "device_id", req.RegistrationID, "err", err)
		}
	}
}

func (s *Service) provision(ctx context.Context, req Request, m *match, csr *x509.CertificateRequest, operationID string) (*Result, error) {
	e := m.enrollment
	now := s.now()
	if err := registry.CheckEnrollment(e, now); err != nil {
		return nil, err
	}
	deviceID, err := e.DeviceIDFor(req.RegistrationID)
	if err != nil {
		return nil, err
	}
	switch {
	case e.Credentials.Certificate == gatehouse.CertRequired && csr == nil:
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "this enrollment issues a certificate: send a CSR")
	case e.Credentials.Certificate == gatehouse.CertNone:
		csr = nil
	}
	if req.RequireCertificate && csr == nil {
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "this enrollment issues no certificates (its certificate policy is none)")
	}
	commit := registry.ProvisionCommit{Scope: req.Scope, RegistrationID: req.RegistrationID, EnrollmentID: e.ID,
		DeviceID: deviceID, OperationID: operationID, Dialect: req.Dialect, Force: req.Force, ConsumeToken: m.consumeToken, CSR: csr,
		ProvedWith: m.kind, KeySlot: m.slot, Enrollment: e}
	secrets, err := s.enrollmentSecrets(e)
	if err != nil {
		return nil, err
	}
	if e.PreProvision != nil {
		verdict, err := s.preProvision(ctx, e, secrets.PreProvisionKey, req, deviceID)
		if err != nil {
			return nil, err
		}
		commit.Tags, commit.Config = verdict.Tags, verdict.Config
	}
	var payload json.RawMessage
	commit.AssignedHub, payload, err = s.allocate(ctx, e, secrets.AllocationHookKey, req, deviceID)
	if err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	if csr != nil {
		auth, err := s.reg.ScopeAuthority(ctx, req.Scope)
		if err != nil {
			return nil, err
		}
		validity := time.Duration(e.Credentials.Validity)
		if validity == 0 {
			sp, err := s.reg.IssuancePolicy(ctx, req.Scope)
			if err != nil {
				return nil, err
			}
			validity = time.Duration(sp.WithDefaults().CertValidity)
		}
		if commit.CertDER, err = auth.IssueDeviceCertificate(csr, req.Scope, deviceID, validity, now); err != nil {
			return nil, fmt.Errorf("issue certificate: %w", err)
		}
		chain = append([]*x509.Certificate{auth.Certificate()}, auth.Chain()...)
	}
	out, err := s.reg.CommitProvision(ctx, commit)
	if err != nil {
		return nil, err
	}
	return &Result{Registration: out.Registration, Device: out.Device, Certificate: commit.CertDER, Chain: chain,
		AssignedHub: out.Registration.AssignedHub, Payload: payload}, nil
}

// Operation returns the registration record for a DPS operation poll. The
// caller must prove itself again (the same proof as for Register).
func (s *Service) Operation(ctx context.Context, req Request, operationID string) (*gatehouse.Registration, *gatehouse.Device, error) {
	g := newGuard(req.Scope+"/"+req.RegistrationID, req.Source)
	if locked, after := s.lockedOut(g); locked {
		return nil, nil, rateLimited(after, "locked out after repeated failed attestations")
	}
	if err := gatehouse.ValidateScopeID(req.Scope); err != nil {
		return nil, nil, gatehouse.Errorf(gatehouse.EEnrollmentNotFound, "no enrollment matches this device")
	}
	if err := gatehouse.ValidateDeviceID(req.RegistrationID); err != nil {
		return nil, nil, err
	}
	if _, err := s.attest(ctx, req); err != nil {
		s.attestationFailed(ctx, req, g, err)
		return nil, nil, err
	}
	reg, err := s.reg.Registration(ctx, req.Scope, req.RegistrationID)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound || err == nil && reg.OperationID != operationID {
		return nil, nil, gatehouse.Errorf(gatehouse.ENotFound, "no such operation for this registration")
	} else if err != nil {
		return nil, nil, err
	}
	var d *gatehouse.Device
	if reg.DeviceID != "" && reg.Status == gatehouse.RegAssigned {
		if d, err = s.store.GetDevice(ctx, req.Scope, reg.DeviceID); err != nil && gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			return nil, nil, err
		}
	}
	return reg, d, nil
}

// IssuedChain returns the certificate chain (DER, leaf first) that an
// assigned registration's operation issued, read from the registry: the
// device's certificate created in the transaction that assigned it, then
// the scope's CA chain. A node that answers a poll for an operation another
// node ran has it in no cache; the registry has it. nil when that operation
// issued no certificate.
func (s *Service) IssuedChain(ctx context.Context, reg *gatehouse.Registration) ([][]byte, error) {
	if reg.Status != gatehouse.RegAssigned || reg.DeviceID == "" {
		return nil, nil
	}
	f := gatehouse.CredentialFilter{Scope: reg.Scope, DeviceID: reg.DeviceID, Kinds: []gatehouse.CredentialKind{gatehouse.CredentialX509}, Limit: 1000}
	for {
		creds, err := s.store.ListCredentials(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, c := range creds {
			if c.CreatedAt.Equal(reg.UpdatedAt) && len(c.CertDER) > 0 {
				chain, err := s.CAChain(ctx, reg.Scope)
				if err != nil {
					return nil, err
				}
				out := [][]byte{c.CertDER}
				for _, ca := range chain {
					out = append(out, ca.Raw)
				}
				return out, nil
			}
		}
		if len(creds) < f.Limit {
			return nil, nil
		}
		f.After = creds[len(creds)-1].ID
	}
}

// CAChain returns the scope's issuing CA through the root (EST cacerts).
func (s *Service) CAChain(ctx context.Context, scope string) ([]*x509.Certificate, error) {
	if err := gatehouse.ValidateScopeID(scope); err != nil {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "scope %q not found", scope)
	}
	auth, err := s.reg.ScopeAuthority(ctx, scope)
	if err != nil {
		return nil, err
	}
	return append([]*x509.Certificate{auth.Certificate()}, auth.Chain()...), nil
}

// Reenroll renews a device's certificate: the device authenticates with its
// current operational certificate (EST simplereenroll, native renew).
func (s *Service) Reenroll(ctx context.Context, scope string, chain []*x509.Certificate, csrData []byte, source string) (*Result, error) {
	if len(chain) == 0 {
		return nil, gatehouse.Errorf(gatehouse.EUnauthenticated, "present the current certificate as the TLS client certificate")
	}
	if source != "" {
		if ok, after := s.bySource.Allow("src:" + source); !ok {
			return nil, rateLimited(after, "too many requests from this address")
		}
	}
	d, _, err := s.reg.AuthenticateCertificate(ctx, scope, chain[0], chain[1:])
	if err != nil {
		return nil, err
	}
	if ok, after := s.byID.Allow(scope + "/" + d.ID); !ok {
		return nil, rateLimited(after, "too many requests for this device")
	}
	csr, err := ca.ParseCSR(csrData)
	if err != nil {
		return nil, err
	}
	iss, err := s.reg.RenewCertificate(ctx, scope, d.ID, csr)
	if err != nil {
		return nil, err
	}
	auth, err := s.reg.ScopeAuthority(ctx, scope)
	if err != nil {
		return nil, err
	}
	return &Result{Device: d, Certificate: iss.Credential.CertDER, Chain: append([]*x509.Certificate{auth.Certificate()}, auth.Chain()...)}, nil
}

func newOperationID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "4." + hex.EncodeToString(b[:8]) + "." + hex.EncodeToString(b[8:])
}
