package mqttapi

import (
	"strings"
	"testing"
)

func TestParseDPSTopic(t *testing.T) {
	tests := []struct {
		topic string
		ok    bool
		want  dpsTopic
	}{
		{"$dps/registrations/PUT/iotdps-register/?$rid=1", true, dpsTopic{kind: dpsRegister, rid: "1"}},
		{"$dps/registrations/PUT/iotdps-register/?$rid=abc-9_Z&x=y", true, dpsTopic{kind: dpsRegister, rid: "abc-9_Z"}},
		{"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.abc.def", true, dpsTopic{kind: dpsPoll, rid: "2", operationID: "4.abc.def"}},
		{"$dps/registrations/GET/iotdps-get-operationstatus/?operationId=op&$rid=3", true, dpsTopic{kind: dpsPoll, rid: "3", operationID: "op"}},
		{"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2", false, dpsTopic{}},
		{"$dps/registrations/PUT/iotdps-register/?$rid=", false, dpsTopic{}},
		{"$dps/registrations/PUT/iotdps-register/?$rid=a/b", false, dpsTopic{}},
		{"$dps/registrations/PUT/iotdps-register/?$rid=a%2Fb", false, dpsTopic{}},
		{"$dps/registrations/PUT/iotdps-register/?$rid=a%23", false, dpsTopic{}},
		{"$dps/registrations/PUT/iotdps-register/?$rid=1&$rid=2", false, dpsTopic{}},
		{"$dps/registrations/PUT/iotdps-register/?$rid=" + strings.Repeat("a", 65), false, dpsTopic{}},
		{"$dps/registrations/PUT/other/?$rid=1", false, dpsTopic{}},
	}
	for _, tc := range tests {
		got, ok := parseDPSTopic(tc.topic)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("parseDPSTopic(%q) = %+v, %v; want %+v, %v", tc.topic, got, ok, tc.want, tc.ok)
		}
	}
}

func TestUsernames(t *testing.T) {
	if u, ok := parseDPSUsername("default/registrations/dev-1/api-version=2019-03-31&ClientVersion=c%2F1"); !ok || u.scope != "default" || u.registrationID != "dev-1" {
		t.Errorf("DPS username = %+v, %v", u, ok)
	}
	for _, bad := range []string{"default/registrations/dev-1", "Default/registrations/dev-1/api-version=1", "default/registrations//api-version=1", "default/registrations/DEV/api-version=1"} {
		if _, ok := parseDPSUsername(bad); ok {
			t.Errorf("parseDPSUsername(%q) accepted", bad)
		}
	}
	for in, want := range map[string]string{"default/dev-1": "dev-1", "default/devices/dev-1": "dev-1", "hub/dev-1/?api-version=2021-04-12": "dev-1"} {
		if _, id, ok := parseDeviceUsername(in); !ok || id != want {
			t.Errorf("parseDeviceUsername(%q) = %q, %v", in, id, ok)
		}
	}
	for _, bad := range []string{"dev-1", "default/", "/dev-1", "default/dev#1"} {
		if _, _, ok := parseDeviceUsername(bad); ok {
			t.Errorf("parseDeviceUsername(%q) accepted", bad)
		}
	}
}

func TestAllowed(t *testing.T) {
	dev := &session{kind: kindDevice, scope: "default", id: "d1"}
	dps := &session{kind: kindDPS, scope: "default", id: "r1"}
	native := &session{kind: kindNative, scope: "default", id: "r1"}
	tests := []struct {
		s     *session
		topic string
		write bool
		want  bool
	}{
		{dev, "devices/d1/telemetry", true, true},
		{dev, "devices/d1/config", true, false},
		{dev, "devices/d1/config", false, true},
		{dev, "devices/d1", true, false},
		{dev, "devices/d1/", true, false},
		{dev, "devices/d10/x", true, false},
		{dev, "devices/d1/#", false, true},
		{dev, "devices/+/x", false, false},
		{dev, "devices/#", false, false},
		{dev, "$dps/registrations/res/#", false, false},
		{dps, "$dps/registrations/res/#", false, true},
		{dps, "$dps/registrations/PUT/iotdps-register/?$rid=1", true, true},
		{dps, "devices/r1/x", true, false},
		{dps, "#", false, false},
		{native, "gatehouse/provision/+/res", false, true},
		{native, "gatehouse/provision/abc/res", false, true},
		{native, "gatehouse/provision/abc/req", true, true},
		{native, "gatehouse/provision/a/b/req", true, false},
		{native, "devices/r1/x", false, false},
	}
	for _, tc := range tests {
		if got := tc.s.allowed(tc.topic, tc.write); got != tc.want {
			t.Errorf("%s allowed(%q, write=%v) = %v, want %v", tc.s.kind, tc.topic, tc.write, got, tc.want)
		}
	}
}

// FuzzParseDPSTopic: whatever a device publishes, an accepted request ID
// makes a response topic with no wildcard and no extra level.
func FuzzParseDPSTopic(f *testing.F) {
	f.Add("$dps/registrations/PUT/iotdps-register/?$rid=1")
	f.Add("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.a.b")
	f.Add("$dps/registrations/PUT/iotdps-register/?$rid=a%2F%23&x=%zz")
	f.Fuzz(func(t *testing.T, topic string) {
		got, ok := parseDPSTopic(topic)
		if !ok {
			return
		}
		if !validRID(got.rid) {
			t.Fatalf("accepted rid %q", got.rid)
		}
		res := dpsResponseTopic(200, got.rid, 1)
		if strings.ContainsAny(res, "+#") || strings.Count(res, "/") != strings.Count(dpsResPrefix, "/")+1 {
			t.Fatalf("response topic %q", res)
		}
		if got.kind == dpsPoll && (got.operationID == "" || strings.ContainsAny(got.operationID, "/+#")) {
			t.Fatalf("operation ID %q", got.operationID)
		}
	})
}

func FuzzParseNativeRequestTopic(f *testing.F) {
	f.Add("gatehouse/provision/r1/req")
	f.Add("gatehouse/provision/a/b/req")
	f.Fuzz(func(t *testing.T, topic string) {
		rid, ok := parseNativeRequestTopic(topic)
		if ok && (!validRID(rid) || nativeResponseTopic(rid) != nativePrefix+rid+nativeResSuffix || strings.ContainsAny(rid, "/+#")) {
			t.Fatalf("accepted %q -> %q", topic, rid)
		}
	})
}

func FuzzUsernames(f *testing.F) {
	f.Add("default/registrations/dev-1/api-version=2019-03-31&ClientVersion=x")
	f.Add("default/devices/dev-1")
	f.Add("default/dev-1/?api-version=1")
	f.Fuzz(func(t *testing.T, u string) {
		if d, ok := parseDPSUsername(u); ok && (strings.ContainsAny(d.scope+d.registrationID, "/+#") || d.scope == "" || d.registrationID == "") {
			t.Fatalf("DPS username %q -> %+v", u, d)
		}
		if scope, id, ok := parseDeviceUsername(u); ok && (strings.ContainsAny(scope+id, "/+#") || scope == "" || id == "") {
			t.Fatalf("device username %q -> %q %q", u, scope, id)
		}
	})
}

func FuzzDecodeDPSRegisterBody(f *testing.F) {
	f.Add([]byte(`{"registrationId":"r1","payload":{"a":1},"csr":"-----BEGIN CERTIFICATE REQUEST-----"}`))
	f.Add([]byte(`{"registrationId":"r1","csr":"AAAA"}`))
	f.Add([]byte(`{"tpm":{}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		payload, _, err := decodeDPSRegisterBody(body, "r1")
		if err == nil && payload != nil && string(payload) == "null" {
			t.Fatal("null payload passed on")
		}
	})
}

func FuzzDecodeNativeRequest(f *testing.F) {
	f.Add([]byte(`{"csr":"AAAA","payload":{"x":1},"forceRegistration":true}`))
	f.Add([]byte(`{"unknown":1}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := decodeNativeRequest(body)
		if err == nil && in == nil {
			t.Fatal("nil request without error")
		}
	})
}
