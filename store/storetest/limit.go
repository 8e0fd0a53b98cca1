package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

// defaultPageSize is the page of ListDevices, ListCredentials and
// ListEnrollments when the filter's Limit is zero or negative (see
// gatehouse.Reader).
const defaultPageSize = 100

// testDefaultLimits: a limit <= 0 means the documented default, not "none"
// nor "everything".
func testDefaultLimits(t *testing.T, s gatehouse.Store) {
	ctx := context.Background()
	createScopes(t, s, "acme")
	const n = defaultPageSize + 5
	var ds []*gatehouse.Device
	var cs []*gatehouse.Credential
	var es []*gatehouse.Enrollment
	for i := range n {
		es = append(es, newEnrollment("acme", fmt.Sprintf("e%03d", i), gatehouse.EnrollmentGroup, gatehouse.AttestX509))
		ds = append(ds, newDevice("acme", fmt.Sprintf("d%03d", i), nil))
		cs = append(cs, newCredential("acme", fmt.Sprintf("c%03d", i), "d1"))
	}
	createDevices(t, s, ds...)
	createCredentials(t, s, cs...)
	createEnrollments(t, s, es...)
	appendEvents(t, s, "acme", gatehouse.MaxEventPage+5)

	for _, limit := range []int{0, -1} {
		devs, err := s.ListDevices(ctx, gatehouse.DeviceFilter{Scope: "acme", Limit: limit})
		if err != nil || len(devs) != defaultPageSize {
			t.Errorf("ListDevices(limit %d): got %d devices (err %v), want %d", limit, len(devs), err, defaultPageSize)
		}
		creds, err := s.ListCredentials(ctx, gatehouse.CredentialFilter{Scope: "acme", Limit: limit})
		if err != nil || len(creds) != defaultPageSize {
			t.Errorf("ListCredentials(limit %d): got %d credentials (err %v), want %d", limit, len(creds), err, defaultPageSize)
		}
		enrs, err := s.ListEnrollments(ctx, gatehouse.EnrollmentFilter{Scope: "acme", Limit: limit})
		if err != nil || len(enrs) != defaultPageSize {
			t.Errorf("ListEnrollments(limit %d): got %d enrollments (err %v), want %d", limit, len(enrs), err, defaultPageSize)
		}
		evs, err := s.ListEvents(ctx, "acme", 0, limit)
		if err != nil || len(evs) != gatehouse.MaxEventPage {
			t.Errorf("ListEvents(limit %d): got %d events (err %v), want %d", limit, len(evs), err, gatehouse.MaxEventPage)
		} else if evs[0].Seq != 1 || evs[len(evs)-1].Seq != gatehouse.MaxEventPage {
			t.Errorf("ListEvents(limit %d): got seqs %d..%d, want 1..%d", limit, evs[0].Seq, evs[len(evs)-1].Seq, gatehouse.MaxEventPage)
		}
	}
}
