package attest_test

import (
	"encoding/base64"
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
)

// A symmetric-key group enrollment: the device holds a key derived from
// the group key and sends a SAS token; the server derives the same key
// and checks the token.
func Example() {
	groupKey, _ := base64.StdEncoding.DecodeString("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==")
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	// On the device (provisioned with its derived key).
	deviceKey := attest.DeriveDeviceKey(groupKey, "dev-1")
	header := attest.NewSAS(deviceKey, "default/registrations/dev-1", now.Add(time.Hour))

	// On the server.
	check := func(header, registrationID string) error {
		sas, err := attest.ParseSAS(header)
		if err != nil {
			return err
		}
		if err := sas.CheckResource("default", registrationID); err != nil {
			return err
		}
		return sas.Verify(attest.DeriveDeviceKey(groupKey, registrationID), now, attest.DefaultMaxLifetime)
	}
	fmt.Println(check(header, "dev-1"))

	err := check(header, "dev-2")
	fmt.Printf("device sees %q; the log says %q\n", gatehouse.ErrorMessage(err), attest.Reason(err))
	// Output:
	// <nil>
	// device sees "attestation failed"; the log says "wrong_resource"
}

func ExampleDeriveDeviceKey() {
	groupKey, _ := base64.StdEncoding.DecodeString("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==")
	key := attest.DeriveDeviceKey(groupKey, "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
	fmt.Println(base64.StdEncoding.EncodeToString(key))
	// Output: Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=
}
