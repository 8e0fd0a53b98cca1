package gatehouse

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"
)

// Size limits. The registry holds metadata, never telemetry: these limits keep
// it that way and keep every row small enough to read in one page.
const (
	MaxTagsBytes     = 8 << 10  // serialized JSON of all tags
	MaxConfigBytes   = 32 << 10 // serialized JSON of the desired configuration
	MaxReportedBytes = 32 << 10 // serialized JSON of the reported properties
	MaxTagKeyLen     = 128
	MaxTagValueLen   = 256
	MaxTags          = 64
)

// ConnectionStatus says whether a device holds a live session with Gatehouse.
type ConnectionStatus string

const (
	Online  ConnectionStatus = "online"
	Offline ConnectionStatus = "offline"
)

// Connection is a device's presence: whether it is connected and when it was
// last seen. LastSeen is nil for a device that has never made contact.
type Connection struct {
	Status   ConnectionStatus `json:"status"`
	LastSeen *time.Time       `json:"lastSeen,omitempty"`
}

// Device is one entry in the registry.
type Device struct {
	ID         string            `json:"id"`
	Scope      string            `json:"scope"`
	State      State             `json:"state"`
	Connection Connection        `json:"connection"`
	Tags       map[string]string `json:"tags"`
	Config     json.RawMessage   `json:"config"`
	Reported   json.RawMessage   `json:"reported"`
	Enrollment string            `json:"enrollment,omitempty"`
	CreatedAt  time.Time         `json:"createdAt"`
	UpdatedAt  time.Time         `json:"updatedAt"`
	ETag       string            `json:"etag"`
}

// Clone returns a deep copy of d.
func (d *Device) Clone() *Device {
	c := *d
	c.Tags = make(map[string]string, len(d.Tags))
	for k, v := range d.Tags {
		c.Tags[k] = v
	}
	c.Config = bytes.Clone(d.Config)
	c.Reported = bytes.Clone(d.Reported)
	if d.Connection.LastSeen != nil {
		t := *d.Connection.LastSeen
		c.Connection.LastSeen = &t
	}
	return &c
}

// NeverSeen reports whether the device has never made authenticated contact.
func (d *Device) NeverSeen() bool { return d.Connection.LastSeen == nil }

// Deletable reports whether the registry may delete d: a device that has
// never been seen, or one decommissioned (whose record has served its audit
// purpose once an operator decides so). Anything else must be decommissioned
// first, so that its credentials are revoked and its history kept.
func (d *Device) Deletable() bool {
	return d.State == StateDecommissioned || d.State == StateProvisioned && d.NeverSeen()
}

// Validate checks the fields a client controls.
func (d *Device) Validate() error {
	if err := ValidateScopeID(d.Scope); err != nil {
		return err
	}
	if err := ValidateDeviceID(d.ID); err != nil {
		return err
	}
	if !d.State.Valid() {
		return Errorf(EInvalid, "unknown state %q", d.State)
	}
	if err := ValidateTags(d.Tags); err != nil {
		return err
	}
	if err := ValidateJSONObject("config", d.Config, MaxConfigBytes); err != nil {
		return err
	}
	return ValidateJSONObject("reported", d.Reported, MaxReportedBytes)
}

// ValidateTags checks tag keys, values and total size.
func ValidateTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return Errorf(ETooLarge, "a device has %d tags; the limit is %d", len(tags), MaxTags)
	}
	size := 2
	for k, v := range tags {
		if err := ValidateTagKey(k); err != nil {
			return err
		}
		if len(v) > MaxTagValueLen {
			return Errorf(ETooLarge, "tag %q has a value of %d bytes; the limit is %d", k, len(v), MaxTagValueLen)
		}
		if !utf8.ValidString(v) {
			return Errorf(EInvalid, "tag %q has a value that is not valid UTF-8", k)
		}
		for _, r := range v {
			if r < 0x20 || r == 0x7f {
				return Errorf(EInvalid, "tag %q has a value with a control character", k)
			}
		}
		size += len(k) + len(v) + 6
	}
	if size > MaxTagsBytes {
		return Errorf(ETooLarge, "tags take %d bytes; the limit is %d", size, MaxTagsBytes)
	}
	return nil
}

// ValidateTagKey checks one tag key: 1-128 characters of letters, digits and
// '-', '.', '_', '/'. The alphabet leaves room for selector syntax (= ! , ( )).
func ValidateTagKey(k string) error {
	if k == "" {
		return Errorf(EInvalid, "tag keys may not be empty")
	}
	if len(k) > MaxTagKeyLen {
		return Errorf(ETooLarge, "tag key %q is %d bytes; the limit is %d", truncate(k, 32), len(k), MaxTagKeyLen)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '/') {
			return Errorf(EInvalid, "tag key %q has an invalid character at position %d; use letters, digits and - . _ /", truncate(k, 32), i+1)
		}
	}
	return nil
}

// ValidateJSONObject checks that raw is a JSON object no larger than max bytes.
// An empty raw is treated as the empty object by callers and accepted here.
func ValidateJSONObject(field string, raw json.RawMessage, max int) error {
	if len(raw) == 0 {
		return nil
	}
	if len(raw) > max {
		return Errorf(ETooLarge, "%s takes %d bytes; the limit is %d", field, len(raw), max)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return Errorf(EInvalid, "%s must be a JSON object", field)
	}
	return nil
}

// CompactJSON returns raw compacted, or "{}" for empty input.
func CompactJSON(raw json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 {
		return json.RawMessage("{}")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// DeviceFilter selects devices in one scope. Results are ordered by ID; After
// is the last ID of the previous page (keyset pagination, stable while rows
// are inserted or deleted).
type DeviceFilter struct {
	Scope      string
	States     []State
	Connection ConnectionStatus
	Selectors  []TagSelector
	After      string
	Limit      int

	// LastSeenBefore and LastSeenAfter bound the time a device was last
	// seen: before is exclusive, after inclusive, so consecutive windows
	// never share a device. A zero time sets no bound. A device never seen
	// matches neither bound.
	LastSeenBefore time.Time
	LastSeenAfter  time.Time
	// Enrollment, when not empty, is the ID of the enrollment that
	// provisioned the device (exact match).
	Enrollment string
}

// MatchLastSeen reports whether a device last seen at seen (nil: never)
// meets the filter's last-seen bounds.
func (f *DeviceFilter) MatchLastSeen(seen *time.Time) bool {
	if f.LastSeenBefore.IsZero() && f.LastSeenAfter.IsZero() {
		return true
	}
	if seen == nil {
		return false
	}
	if !f.LastSeenBefore.IsZero() && !seen.Before(f.LastSeenBefore) {
		return false
	}
	return f.LastSeenAfter.IsZero() || !seen.Before(f.LastSeenAfter)
}
