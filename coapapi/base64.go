package coapapi

import (
	"bytes"
	"encoding/base64"
)

// base64Decode decodes standard or URL base64, padded or not, ignoring
// whitespace.
func base64Decode(b []byte) ([]byte, error) {
	s := string(bytes.Join(bytes.Fields(b), nil))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if der, err := enc.DecodeString(s); err == nil {
			return der, nil
		}
	}
	_, err := base64.StdEncoding.DecodeString(s)
	return nil, err
}
