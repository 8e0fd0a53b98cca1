package provision_test

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
	"github.com/gatehouse-iot/gatehouse/provision"
)

func TestParsePSKIdentity(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want provision.PSKIdentity
		ok   bool
	}{
		{"default/dev-1", provision.PSKIdentity{Scope: "default", RegistrationID: "dev-1"}, true},
		{"default/line-1/dev-1", provision.PSKIdentity{Scope: "default", EnrollmentID: "line-1", RegistrationID: "dev-1"}, true},
		{"default", provision.PSKIdentity{}, false},
		{"default/", provision.PSKIdentity{}, false},
		{"Default/dev-1", provision.PSKIdentity{}, false},
		{"a/b/c/d", provision.PSKIdentity{}, false},
		{"default/DEV", provision.PSKIdentity{}, false},
	} {
		got, err := provision.ParsePSKIdentity(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParsePSKIdentity(%q) = %+v, %v; want %+v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("String() = %q, want %q", got.String(), tc.in)
		}
	}
}

func TestDevicePSK(t *testing.T) {
	f := newFixture(t)
	g1 := f.enroll(t, `{"id":"line-1","type":"group","attestation":{"type":"symmetric_key"}}`)
	ind := f.enroll(t, `{"id":"solo-1","type":"individual","attestation":{"type":"symmetric_key"}}`)
	k1, _ := base64.StdEncoding.DecodeString(g1.Attestation.PrimaryKey)
	kInd, _ := base64.StdEncoding.DecodeString(ind.Attestation.PrimaryKey)

	psk := func(scope, enr, reg string) []byte {
		t.Helper()
		k, err := f.prov.DevicePSK(f.ctx, scope, enr, reg)
		if err != nil {
			t.Fatalf("DevicePSK(%s, %s, %s): %v", scope, enr, reg, err)
		}
		return k
	}
	if got, want := psk("default", "", "dev-1"), attest.DeriveDeviceKey(k1, "dev-1"); !bytes.Equal(got, want) || len(got) != 32 {
		t.Errorf("single group: got %x, want %x", got, want)
	}
	if got, want := psk("default", "line-1", "dev-1"), attest.DeriveDeviceKey(k1, "dev-1"); !bytes.Equal(got, want) {
		t.Errorf("named group: got %x, want %x", got, want)
	}
	if got := psk("default", "", "solo-1"); !bytes.Equal(got, kInd) {
		t.Errorf("individual: got %x, want %x", got, kInd)
	}
	// Unknown identities get a stable decoy, never a real key, never an error.
	for _, id := range [][3]string{{"default", "nope", "dev-1"}, {"nosuchscope", "", "dev-1"}, {"default", "line-1", "BAD ID"}} {
		a, b := psk(id[0], id[1], id[2]), psk(id[0], id[1], id[2])
		if !bytes.Equal(a, b) || len(a) != 32 || bytes.Equal(a, attest.DeriveDeviceKey(k1, "dev-1")) {
			t.Errorf("decoy for %v: %x then %x", id, a, b)
		}
	}

	// A provisioned device through the PSK path.
	id := provision.PSKIdentity{Scope: "default", RegistrationID: "dev-9"}
	res, err := f.prov.RegisterPSK(f.ctx, id, provision.Request{Dialect: "coap"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Device.ID != "dev-9" || res.Device.Enrollment != "line-1" {
		t.Errorf("device = %+v", res.Device)
	}
	if dev, err := f.prov.PSKDevice(f.ctx, id); err != nil || dev != "dev-9" {
		t.Errorf("PSKDevice = %q, %v", dev, err)
	}
	_, err = f.prov.RegisterPSK(f.ctx, provision.PSKIdentity{Scope: "default", EnrollmentID: "nope", RegistrationID: "dev-8"}, provision.Request{Dialect: "coap"})
	wantCode(t, err, gatehouse.EEnrollmentNotFound)
}

func TestDevicePSKAmbiguousGroups(t *testing.T) {
	f := newFixture(t)
	g1 := f.enroll(t, `{"id":"line-1","type":"group","attestation":{"type":"symmetric_key"}}`)
	f.enroll(t, `{"id":"line-2","type":"group","attestation":{"type":"symmetric_key"}}`)
	k1, _ := base64.StdEncoding.DecodeString(g1.Attestation.PrimaryKey)
	got, err := f.prov.DevicePSK(f.ctx, "default", "", "dev-1")
	if err != nil || bytes.Equal(got, attest.DeriveDeviceKey(k1, "dev-1")) {
		t.Errorf("two groups, none named: got %x, %v; want a decoy", got, err)
	}
	got, err = f.prov.DevicePSK(f.ctx, "default", "line-1", "dev-1")
	if err != nil || !bytes.Equal(got, attest.DeriveDeviceKey(k1, "dev-1")) {
		t.Errorf("named group: got %x, %v", got, err)
	}
}
