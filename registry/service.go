package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/secret"
)

// Service is the registry. It is safe for concurrent use.
type Service struct {
	store    gatehouse.Store
	now      func() time.Time
	log      *slog.Logger
	hub      *hub
	root     *ca.Authority                       // the installation root; signs scope CAs
	keyring  *secret.Keyring                     // seals scope CA keys
	cas      recheckCache[cachedCA]              // unsealed scope CAs
	policies recheckCache[gatehouse.ScopePolicy] // scopes' issuance policies
	pres     *presence
	// verified caches certificate chains that verified (signature work
	// only; never status).
	verified verifyCache
	// jobs runs import jobs; nil unless WithImportJobs.
	jobs *jobRunner
	// enrollmentChanges counts the transactions that changed enrollments
	// (see EnrollmentChanges).
	enrollmentChanges atomic.Uint64
}

// Option configures a Service.
type Option func(*Service)

// WithClock sets the time source (tests inject a fixed or stepping clock).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithCA gives the registry the installation root CA (which signs each
// scope's issuing CA) and the keyring that seals CA keys at rest. Without it
// scopes get no CA and certificate operations answer not_found.
func WithCA(root *ca.Authority, kr *secret.Keyring) Option {
	return func(s *Service) { s.root, s.keyring = root, kr }
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// New returns a registry over store.
func New(store gatehouse.Store, opts ...Option) *Service {
	s := &Service{store: store, now: time.Now, log: slog.New(slog.DiscardHandler), hub: newHub(), cas: newRecheckCache[cachedCA](), policies: newRecheckCache[gatehouse.ScopePolicy](), pres: newPresence()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// timestamp returns the current time as stored: UTC, microsecond precision
// (what every backend keeps).
func (s *Service) timestamp() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// update runs fn in a transaction and, once it has committed, wakes the
// event streams of the scopes fn appended events to.
func (s *Service) update(ctx context.Context, fn func(tx gatehouse.Tx, ev *eventLog) error) error {
	var scopes []string
	var enrollments bool
	err := s.store.Update(ctx, func(tx gatehouse.Tx) error {
		ev := &eventLog{tx: tx}
		if err := fn(tx, ev); err != nil {
			return err
		}
		scopes, enrollments = ev.scopes, ev.enrollments
		return nil
	})
	if err == nil {
		if enrollments {
			s.enrollmentChanges.Add(1)
		}
		for _, sc := range scopes {
			s.hub.notify(sc)
		}
	}
	return err
}

// EnrollmentChanges is a number that moves after every transaction this
// node commits that creates, changes or deletes enrollments (their
// enrollment.* and enrollments.* events say so; a registration's count
// does not). Caches of enrollments compare it to drop what this node
// changed at once.
func (s *Service) EnrollmentChanges() uint64 { return s.enrollmentChanges.Load() }

// eventLog appends events within a transaction and remembers their scopes,
// and whether any was about enrollments.
type eventLog struct {
	tx          gatehouse.Tx
	scopes      []string
	enrollments bool
}

func (l *eventLog) append(scope, typ, actor, subject string, t time.Time, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", typ, err)
	}
	e := &gatehouse.Event{Scope: scope, Type: typ, Time: t, Actor: actor, Subject: subject, Data: raw}
	if err := l.tx.AppendEvent(e); err != nil {
		return fmt.Errorf("append %s event: %w", typ, err)
	}
	l.scopes = append(l.scopes, scope)
	if strings.HasPrefix(typ, "enrollment") {
		l.enrollments = true
	}
	return nil
}

// newETag returns a fresh random entity tag. Random rather than a counter so
// that a device deleted and created again never repeats an old etag.
func newETag() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Ready reports whether the store is reachable and migrated.
func (s *Service) Ready(ctx context.Context) error { return s.store.Ready(ctx) }
