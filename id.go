package gatehouse

// Identifier rules. Device IDs follow the DPS registration ID alphabet so a
// registration ID can become a device ID unchanged. Scope IDs are narrower: they
// appear in URNs (urn:gatehouse:{scope}:{device}), PSK identities
// ({scope}/{id}) and MQTT topics, so they may not contain ':', '/' or '.'.
const (
	MaxDeviceIDLen = 128
	MaxScopeIDLen  = 63
	MaxNameLen     = 128
	DefaultScope   = "default"
)

// ValidateDeviceID reports whether id is a valid device ID: 1-128 characters
// of lowercase letters, digits and '-', '.', '_', ':'.
func ValidateDeviceID(id string) error {
	if id == "" {
		return Errorf(EInvalidID, "device id is required")
	}
	if len(id) > MaxDeviceIDLen {
		return Errorf(EInvalidID, "device id is %d characters long; the limit is %d", len(id), MaxDeviceIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !isDeviceIDByte(id[i]) {
			return Errorf(EInvalidID, "device id %q has an invalid character at position %d; use lowercase letters, digits and - . _ :", truncate(id, 64), i+1)
		}
	}
	return nil
}

func isDeviceIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == ':'
}

// reservedScopeIDs would collide with the HTTPS listener's own paths
// (device dialects such as DPS put the scope first in the path).
var reservedScopeIDs = map[string]bool{"v1": true, "v2": true, "device": true, "healthz": true, "readyz": true, "metrics": true}

// ValidateScopeID reports whether id is a valid scope ID: 1-63 characters of
// lowercase letters, digits and '-', starting and ending with a letter or digit.
func ValidateScopeID(id string) error {
	if id == "" {
		return Errorf(EInvalidID, "scope id is required")
	}
	if reservedScopeIDs[id] {
		return Errorf(EInvalidID, "scope id %q is reserved; choose another", id)
	}
	if len(id) > MaxScopeIDLen {
		return Errorf(EInvalidID, "scope id is %d characters long; the limit is %d", len(id), MaxScopeIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(id)-1) {
			return Errorf(EInvalidID, "scope id %q is invalid at position %d; use lowercase letters, digits and inner hyphens", truncate(id, 64), i+1)
		}
	}
	return nil
}

// ValidateName checks a human-readable name (of a token, say): 1-128
// printable characters, no control characters.
func ValidateName(what, name string) error {
	if name == "" {
		return Errorf(EInvalid, "%s is required", what)
	}
	if len(name) > MaxNameLen {
		return Errorf(ETooLarge, "%s is %d bytes long; the limit is %d", what, len(name), MaxNameLen)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return Errorf(EInvalid, "%s contains a control or invalid character", what)
		}
	}
	return nil
}

// truncate shortens s for inclusion in an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
