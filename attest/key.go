package attest

import (
	"crypto/hmac"
	"crypto/sha256"
)

// DeriveDeviceKey returns a device's symmetric key for a group enrollment:
// HMAC-SHA256(groupKey, utf8(registrationID)), 32 raw bytes. DPS devices
// hold it base64-encoded. The group key itself never goes on a device.
func DeriveDeviceKey(groupKey []byte, registrationID string) []byte {
	m := hmac.New(sha256.New, groupKey)
	m.Write([]byte(registrationID))
	return m.Sum(nil)
}
