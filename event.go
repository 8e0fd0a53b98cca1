package gatehouse

import (
	"encoding/json"
	"time"
)

// Event types. An event is written in the same transaction as the change it
// describes (a transactional outbox): if the change committed, so did its event.
const (
	EventScopeCreated       = "scope.created"
	EventScopeUpdated       = "scope.updated"
	EventTokenCreated       = "token.created"
	EventTokenRevoked       = "token.revoked"
	EventDeviceCreated      = "device.created"
	EventDeviceUpdated      = "device.updated"
	EventDeviceStateChanged = "device.state_changed"
	EventDeviceDeleted      = "device.deleted"
)

// Event is one entry of a scope's event log. Seq starts at 1 in each scope and
// increases by one per event; readers never observe a gap.
type Event struct {
	Seq     int64           `json:"seq"`
	Scope   string          `json:"scope"`
	Type    string          `json:"type"`
	Time    time.Time       `json:"time"`
	Actor   string          `json:"actor"`
	Subject string          `json:"subject"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// MaxEventPage bounds one page of events.
const MaxEventPage = 1000

// DeviceSubject names a device as an event subject.
func DeviceSubject(id string) string { return "devices/" + id }
