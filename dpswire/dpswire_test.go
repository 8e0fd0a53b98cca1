package dpswire

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

func TestState(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 5000, time.FixedZone("x", 3600))
	reg := &gatehouse.Registration{RegistrationID: "r1", DeviceID: "d1", Status: gatehouse.RegAssigned, Substatus: gatehouse.SubInitialAssignment,
		AssignedHub: "hub", ETag: "e", CreatedAt: at, UpdatedAt: at}
	st := State(reg, "opaque", json.RawMessage(`{"a":1}`), []string{"leaf", "ca"})
	if st.Status != "assigned" || st.DeviceID != "d1" || st.CreatedDateTimeUTC != "2026-11-26T11:00:00.000005Z" ||
		string(st.Payload) != `{"a":1}` || len(st.IssuedCertificateChain) != 2 || st.ErrorCode != 0 {
		t.Errorf("assigned: %+v", st)
	}

	for _, tc := range []struct {
		code, message string
		want          int
		wantMessage   string
	}{
		{gatehouse.EAttestationFailed, "bad key", 401002, "opaque"}, // every 401 says the same
		{gatehouse.EQuotaExceeded, "full", 403007, "full"},
		{"no_such_code", "boom", 500000, "boom"},
	} {
		failed := &gatehouse.Registration{RegistrationID: "r1", Status: gatehouse.RegFailed, ErrorCode: tc.code, ErrorMessage: tc.message}
		st := State(failed, "opaque", json.RawMessage(`{"a":1}`), []string{"leaf"})
		if st.ErrorCode != tc.want || st.ErrorMessage != tc.wantMessage || st.Payload != nil || st.IssuedCertificateChain != nil {
			t.Errorf("failed with %s: %+v, want errorCode %d and message %q, no payload or chain", tc.code, st, tc.want, tc.wantMessage)
		}
	}
	if _, known := Error("no_such_code"); known {
		t.Error("an unknown code is known")
	}
}
