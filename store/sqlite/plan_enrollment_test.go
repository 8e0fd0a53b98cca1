package sqlite

import (
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

// TestEnrollmentQueryPlan checks which index answers each enrollment query
// shape. None may scan the table or sort: a type and an attestation type
// walk their index in page order, anything else the primary key.
func TestEnrollmentQueryPlan(t *testing.T) {
	s := MustOpen(t)
	const typeAtt = "enrollments_type_attestation (scope=? AND type=? AND attestation_type=? AND id>?)"
	const pk = "sqlite_autoindex_enrollments_1 (scope=? AND id>?)"
	for _, tc := range []struct {
		name string
		f    gatehouse.EnrollmentFilter
		want string // must appear in the plan
	}{
		{"none", gatehouse.EnrollmentFilter{}, pk},
		{"type", gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentGroup}, pk},
		{"attestation", gatehouse.EnrollmentFilter{Attestation: gatehouse.AttestX509}, pk},
		{"type-attestation", gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentGroup, Attestation: gatehouse.AttestSymmetricKey}, typeAtt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.Scope, f.After, f.Limit = "acme", "m", 100
			query, args := enrollmentQuery(f)
			plan := explain(t, s, query, args...)
			t.Logf("plan:\n%s", plan)
			if !strings.Contains(plan, tc.want) {
				t.Errorf("plan: got\n%s\nwant it to mention %q", plan, tc.want)
			}
			for _, line := range strings.Split(plan, "\n") {
				if strings.HasPrefix(line, "SCAN ") {
					t.Errorf("plan has a full scan: %q", line)
				}
				if strings.Contains(line, "TEMP B-TREE") {
					t.Errorf("plan sorts: %q; pages must come in index order", line)
				}
			}
		})
	}
	// The registration lookups use the primary key.
	plan := explain(t, s, `SELECT `+registrationColumns+` FROM registrations WHERE scope = ? AND registration_id = ?`, "acme", "r1")
	if !strings.Contains(plan, "PRIMARY KEY (scope=? AND registration_id=?)") {
		t.Errorf("GetRegistration plan: got\n%s\nwant the primary key", plan)
	}
}
