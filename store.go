package gatehouse

import (
	"context"
	"time"
)

// Store is the storage contract, cut at the domain level so that SQL
// backends keep real indexes and transactions. store/sqlite and
// store/postgres implement it; store/storetest is the conformance suite both
// run in full.
//
// Errors: ENotFound for a missing row, EConflict for a duplicate key,
// EPreconditionFailed for an etag mismatch, EUnavailable when the database
// cannot be reached. Anything else is internal.
//
// Values come back as they were written, with two normalisations: times are
// in UTC (at the microsecond precision callers write them with), and an
// empty byte slice reads back as nil. A nil time pointer stays nil.
//
// Enrollments are kept partly as their JSON, so they have a few more: an
// empty InitialTags map and an empty Allocation.Endpoints slice read back as
// nil, and their strings must be valid UTF-8 (encoding/json would replace
// invalid bytes with U+FFFD). InitialConfig, Attestation.TokenHash and
// SealedSecrets are kept apart from the JSON and come back byte for byte,
// whatever they hold.
type Store interface {
	Reader

	// Update runs fn in one read-write transaction. Everything fn writes,
	// events included, commits together or not at all; when Update returns
	// nil the commit is durable. If fn returns an error, none of its writes
	// persist and Update returns that error. fn must not keep tx after it
	// returns. A backend may run fn again if the database asks to retry a
	// serialization conflict (PostgreSQL) or to take a failed fn out of a
	// group-committed batch (SQLite), so fn must not have side effects outside
	// tx.
	Update(ctx context.Context, fn func(tx Tx) error) error

	// Ready reports whether the database is reachable and migrated.
	Ready(ctx context.Context) error

	// Close releases the store's resources.
	Close() error
}

// Reader holds the queries that need no transaction. Each is consistent on
// its own (one statement or one snapshot).
type Reader interface {
	WebhookReader
	CountReader
	ImportJobReader

	GetScope(ctx context.Context, id string) (*Scope, error)
	ListScopes(ctx context.Context) ([]*Scope, error)

	GetToken(ctx context.Context, id string) (*Token, error)
	ListTokens(ctx context.Context, scope string) ([]*Token, error)

	GetDevice(ctx context.Context, scope, id string) (*Device, error)
	// ListDevices returns up to f.Limit devices ordered by ID, after f.After.
	// f.Limit <= 0 means 100.
	ListDevices(ctx context.Context, f DeviceFilter) ([]*Device, error)
	// DeviceHistory returns a device's state changes, oldest first.
	DeviceHistory(ctx context.Context, scope, id string) ([]*StateChange, error)

	// ListEvents returns up to limit events of scope with Seq > after, in
	// order. A reader never sees event n+1 without event n. limit <= 0
	// means MaxEventPage.
	ListEvents(ctx context.Context, scope string, after int64, limit int) ([]*Event, error)

	// GetSetting returns an installation-wide value (ENotFound if unset).
	GetSetting(ctx context.Context, key string) ([]byte, error)

	// GetScopeCA returns a scope's issuing CA (ENotFound if it has none).
	GetScopeCA(ctx context.Context, scope string) (*ScopeCA, error)
	// GetCRL returns a scope's current CRL (ENotFound if none was made yet).
	GetCRL(ctx context.Context, scope string) (*CRL, error)
	// GetCredential returns one credential by scope and ID.
	GetCredential(ctx context.Context, scope, id string) (*Credential, error)
	// ListCredentials returns up to f.Limit credentials ordered by ID, after
	// f.After. Empty filter fields match everything; f.Limit <= 0 means 100.
	ListCredentials(ctx context.Context, f CredentialFilter) ([]*Credential, error)

	// GetEnrollment returns one enrollment.
	GetEnrollment(ctx context.Context, scope, id string) (*Enrollment, error)
	// ListEnrollments returns up to f.Limit enrollments of f.Scope ordered by
	// ID, after f.After, of type f.Type and attestation type f.Attestation
	// when those are set. f.Limit <= 0 means 100.
	ListEnrollments(ctx context.Context, f EnrollmentFilter) ([]*Enrollment, error)
	// GetRegistration returns the registration record of a registration ID.
	GetRegistration(ctx context.Context, scope, registrationID string) (*Registration, error)
}

// Tx is a read-write transaction. Reads through a Tx see the transaction's
// own writes; GetDevice, GetCredential, GetCRL, GetEnrollment and
// GetRegistration lock the row against concurrent writers until the
// transaction ends, so read-modify-write through a Tx never loses an update.
//
// An ordinary error from a Tx method (ENotFound, EConflict,
// EPreconditionFailed) changes nothing and leaves the transaction usable:
// fn may handle it, go on writing and return nil, and its other writes
// commit. Any other error may have ended the transaction; fn should return it.
// Writes made through Deferred(tx, ...) are the exception: their errors may
// come late, and fn must return them, never handle them and go on (a
// backend that queues them fails the transaction; one that runs them at
// once would commit what fn did after a handled refusal).
type Tx interface {
	WebhookTx
	ImportJobTx

	GetScope(id string) (*Scope, error)
	CreateScope(s *Scope) error

	CreateToken(t *Token) error
	// RevokeToken sets RevokedAt on a token.
	RevokeToken(id string, at time.Time) error

	GetDevice(scope, id string) (*Device, error)
	CreateDevice(d *Device) error
	// UpdateDevice replaces the stored device whose etag is prevETag with d
	// (same scope and id). EPreconditionFailed if the stored etag differs.
	UpdateDevice(d *Device, prevETag string) error
	// DeleteDevice removes a device and its history.
	DeleteDevice(scope, id string) error
	AddStateChange(scope, id string, c *StateChange) error

	// AppendEvent writes e with the next number of e.Scope's sequence. The
	// number is in e.Seq once Update has returned nil (a backend may number
	// and write the transaction's events when fn has returned, so that the
	// sequence is locked only until the commit: PostgreSQL), not before.
	AppendEvent(e *Event) error

	// UpdateScope replaces a scope's mutable fields (its policy), leaving
	// CreatedAt as stored. ENotFound if the scope does not exist.
	UpdateScope(s *Scope) error

	// PutScopeCA stores a scope's issuing CA, replacing any previous one.
	PutScopeCA(ca *ScopeCA) error
	// GetCRL returns the scope's current CRL, locking it until the
	// transaction ends (ENotFound if none).
	GetCRL(scope string) (*CRL, error)
	// PutCRL stores a CRL. EConflict unless crl.Number is greater than the
	// stored CRL's number: CRL numbers only grow.
	PutCRL(crl *CRL) error

	// CreateCredential stores a new credential (EConflict on a duplicate
	// scope and ID). Credentials are kept when their device is deleted: a
	// revoked certificate must stay on the CRL until it expires.
	CreateCredential(c *Credential) error
	// GetCredential returns a credential, locking it until the transaction ends.
	GetCredential(scope, id string) (*Credential, error)
	// UpdateCredential replaces a credential's mutable fields: Status,
	// RetireAt, RevokedAt, RevocationReason, ExpiryNotifiedAt, Secret. The
	// other fields of c only name it (Scope, ID) or are ignored. ENotFound
	// if it does not exist.
	UpdateCredential(c *Credential) error
	// DeviceCredentials returns all credentials of a device, ordered by ID,
	// also after the device was deleted.
	DeviceCredentials(scope, deviceID string) ([]*Credential, error)

	// CreateEnrollment stores a new enrollment (EConflict on a duplicate
	// scope and ID).
	CreateEnrollment(e *Enrollment) error
	// GetEnrollment returns an enrollment, locking it until the transaction ends.
	GetEnrollment(scope, id string) (*Enrollment, error)
	// UpdateEnrollment replaces the stored enrollment whose etag is prevETag
	// with e (same scope and id), every field included. EPreconditionFailed
	// if the stored etag differs, ENotFound if there is none. The counts
	// (Registrations, Attestation.Uses) are written too: read e with
	// GetEnrollment in the same transaction, which locks them.
	UpdateEnrollment(e *Enrollment, prevETag string) error
	// CountEnrollmentUse adds u's counts to an enrollment whose etag is
	// still u.ETag, if they stay within u's limits, without reading or
	// rewriting the rest of it: one registration's last statement. The
	// etag is unchanged. ENotFound if there is no such enrollment,
	// EPreconditionFailed if its etag differs, EQuotaExceeded if a count
	// would pass its limit; then nothing changed.
	CountEnrollmentUse(u EnrollmentUse) error
	// DeleteEnrollment removes an enrollment (ENotFound if missing). The
	// registration records that name it are kept.
	DeleteEnrollment(scope, id string) error
	// GetRegistration returns the registration record of a registration ID.
	// It locks the registration ID until the transaction ends, also when
	// there is no record yet (ENotFound): two first registrations of one
	// device run one after the other, and the second sees the first's record.
	GetRegistration(scope, registrationID string) (*Registration, error)
	// PutRegistration stores r, replacing any record of the same scope and
	// registration ID.
	PutRegistration(r *Registration) error

	// GetDevices returns the devices of scope among ids that exist, keyed by
	// ID, locking them until the transaction ends (bulk import reads a
	// whole batch in a few statements instead of one per row).
	GetDevices(scope string, ids []string) (map[string]*Device, error)
	// CreateDevices stores new devices, each with its first state change
	// (changes[i] belongs to ds[i]), in as few statements as the backend
	// can. All or nothing: EConflict if any of them exists, and then none
	// is written and the transaction stays usable.
	CreateDevices(ds []*Device, changes []*StateChange) error

	// GetEnrollments returns the enrollments of scope among ids that exist,
	// keyed by ID, locking them until the transaction ends (bulk import).
	GetEnrollments(scope string, ids []string) (map[string]*Enrollment, error)
	// CreateEnrollments stores new enrollments in as few statements as the
	// backend can. All or nothing: EConflict if any of them exists, and then
	// none is written and the transaction stays usable.
	CreateEnrollments(es []*Enrollment) error

	// PutSettingIfAbsent stores value under key unless the key exists, and
	// returns the stored value either way: the first writer among several
	// nodes wins.
	PutSettingIfAbsent(key string, value []byte) ([]byte, error)
}

// EventFilter selects events for the audit query. Empty fields match
// everything. Type matches exactly, or, ending in ".*", every type with that
// prefix ("device.*"). Since and Until bound the event time (inclusive,
// exclusive); zero means unbounded.
type EventFilter struct {
	Scope   string
	After   int64 // only events with Seq > After
	Limit   int   // <= 0 means MaxEventPage
	Actor   string
	Subject string
	Type    string
	Since   time.Time
	Until   time.Time
}

// EventHook is a scope's event delivery webhook and its delivery cursor
// (not to be confused with Webhook, an enrollment's provisioning call).
// The store keeps it as written; the registry owns its meaning.
type EventHook struct {
	Scope        string
	ID           string
	URL          string
	Events       []string // type filters: exact types or prefixes ending ".*"; empty means all
	SealedSecret []byte   // the signing secret, sealed by the keyring
	CreatedAt    time.Time
	CreatedBy    string

	// DeliveredSeq is the last sequence number done with (delivered,
	// filtered out or dead-lettered).
	DeliveredSeq int64
	// Failures counts consecutive failed attempts at event DeliveredSeq+1.
	Failures    int
	NextAttempt time.Time // no attempt before this (backoff)
	LastError   string
	// Generation grows with every replay, so that a worker that read the
	// cursor before the replay does not write its progress over it.
	Generation int64
	// LeaseOwner holds delivery until LeaseUntil: one node delivers a
	// webhook at a time.
	LeaseOwner string
	LeaseUntil time.Time
}

// DeadLetter is an event a webhook gave up delivering.
type DeadLetter struct {
	Scope     string
	WebhookID string
	Seq       int64
	Type      string
	Attempts  int
	LastError string
	Time      time.Time // when it was given up
}

// WebhookReader is the read side of event delivery webhooks, part of Reader.
type WebhookReader interface {
	// QueryEvents returns up to f.Limit events of f.Scope with Seq >
	// f.After that match f, in sequence order.
	QueryEvents(ctx context.Context, f EventFilter) ([]*Event, error)
	// GetWebhook returns one webhook (ENotFound if missing).
	GetWebhook(ctx context.Context, scope, id string) (*EventHook, error)
	// ListWebhooks returns the webhooks of scope ordered by ID; scope ""
	// lists every scope's, ordered by scope and ID.
	ListWebhooks(ctx context.Context, scope string) ([]*EventHook, error)
	// ListDeadLetters returns up to limit dead letters of a webhook with
	// Seq > after, in sequence order. limit <= 0 means 100.
	ListDeadLetters(ctx context.Context, scope, webhookID string, after int64, limit int) ([]*DeadLetter, error)
}

// WebhookTx is the write side of webhooks, part of Tx.
type WebhookTx interface {
	// CreateWebhook stores a new webhook (EConflict on a duplicate ID).
	CreateWebhook(w *EventHook) error
	// GetWebhook returns a webhook, locking it until the transaction ends.
	GetWebhook(scope, id string) (*EventHook, error)
	// UpdateWebhook replaces a webhook's cursor and lease fields
	// (DeliveredSeq, Failures, NextAttempt, LastError, Generation,
	// LeaseOwner, LeaseUntil). ENotFound if it does not exist.
	UpdateWebhook(w *EventHook) error
	// DeleteWebhook removes a webhook and its dead letters (ENotFound if
	// missing).
	DeleteWebhook(scope, id string) error
	// AddDeadLetter records an event a webhook gave up on, replacing an
	// earlier dead letter of the same event.
	AddDeadLetter(d *DeadLetter) error
}

// DeviceCountBy names what CountDevices groups by: "state", "connection",
// or "tag:<key>".
type DeviceCountBy string

// CountReader holds the dashboard counts.
type CountReader interface {
	// CountDevices returns the number of devices of scope per value of by
	// (state, connection status, or a tag's value; devices without the tag
	// count under ""). Values with no devices are absent.
	CountDevices(ctx context.Context, scope string, by DeviceCountBy) (map[string]int64, error)
	// CountAllDevices is CountDevices over every scope, keyed by scope
	// then value (metrics read it at scrape time).
	CountAllDevices(ctx context.Context, by DeviceCountBy) (map[string]map[string]int64, error)
	// CountExpiringCredentials returns, per scope, the number of active
	// credentials whose NotAfter is in [from, before). Scopes with none
	// are absent.
	CountExpiringCredentials(ctx context.Context, from, before time.Time) (map[string]int64, error)
}
