package gatehouse

import (
	"encoding/base64"
	"strings"
)

// Cursors are opaque to clients: base64url of "v1:" and the last ID of the
// previous page. They carry no secret and grant nothing; a tampered cursor
// is at worst a different valid position, or EInvalidCursor.
const cursorPrefix = "v1:"

// EncodeCursor returns the cursor that continues after id.
func EncodeCursor(id string) string {
	if id == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + id))
}

// DecodeCursor returns the ID a cursor continues after. The empty cursor means
// the first page.
func DecodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	bad := Errorf(EInvalidCursor, "cursor is not one this server issued; pass nextCursor from a previous page unchanged, or omit it to start over")
	if len(c) > 512 {
		return "", bad
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", bad
	}
	id, ok := strings.CutPrefix(string(b), cursorPrefix)
	if !ok || ValidateDeviceID(id) != nil {
		return "", bad
	}
	return id, nil
}
