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
type Store interface {
	Reader

	// Update runs fn in one read-write transaction. Everything fn writes,
	// events included, commits together or not at all; when Update returns
	// nil the commit is durable. If fn returns an error, none of its writes
	// persist and Update returns that error. fn must not keep tx after it
	// returns. A backend may run fn again if the database asks to retry a
	// serialization conflict, so fn must not have side effects outside tx.
	Update(ctx context.Context, fn func(tx Tx) error) error

	// Ready reports whether the database is reachable and migrated.
	Ready(ctx context.Context) error

	// Close releases the store's resources.
	Close() error
}

// Reader holds the queries that need no transaction. Each is consistent on
// its own (one statement or one snapshot).
type Reader interface {
	GetScope(ctx context.Context, id string) (*Scope, error)
	ListScopes(ctx context.Context) ([]*Scope, error)

	GetToken(ctx context.Context, id string) (*Token, error)
	ListTokens(ctx context.Context, scope string) ([]*Token, error)

	GetDevice(ctx context.Context, scope, id string) (*Device, error)
	// ListDevices returns up to f.Limit devices ordered by ID, after f.After.
	ListDevices(ctx context.Context, f DeviceFilter) ([]*Device, error)
	// DeviceHistory returns a device's state changes, oldest first.
	DeviceHistory(ctx context.Context, scope, id string) ([]*StateChange, error)

	// ListEvents returns up to limit events of scope with Seq > after, in
	// order. A reader never sees event n+1 without event n.
	ListEvents(ctx context.Context, scope string, after int64, limit int) ([]*Event, error)

	// GetSetting returns an installation-wide value (ENotFound if unset).
	GetSetting(ctx context.Context, key string) ([]byte, error)
}

// Tx is a read-write transaction. Reads through a Tx see the transaction's
// own writes; GetDevice locks the row against concurrent writers until the
// transaction ends, so read-modify-write through a Tx never loses an update.
type Tx interface {
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

	// AppendEvent assigns e.Seq (the next number in e.Scope) and writes e.
	AppendEvent(e *Event) error

	// PutSettingIfAbsent stores value under key unless the key exists, and
	// returns the stored value either way: the first writer among several
	// nodes wins.
	PutSettingIfAbsent(key string, value []byte) ([]byte, error)
}
