package postgres_test

import (
	"fmt"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
)

// TestEnrollmentQueriesUseIndexes does for the enrollment list queries what
// TestQueriesUseIndexes does for devices: every shape has an index path
// (sequential scans disabled), and on a few thousand analysed rows the
// planner picks (scope, type, attestation_type, id) for one type and
// attestation type (the symmetric-key groups a registration tries), in page
// order, without a sort.
func TestEnrollmentQueriesUseIndexes(t *testing.T) {
	conn := planDatabase(t, `ANALYZE`, func(tx gatehouse.Tx, scope string) error {
		// Individual enrollments are most; groups are few.
		for i := range 3000 {
			typ, att := gatehouse.EnrollmentIndividual, gatehouse.AttestX509
			switch {
			case i%100 == 0:
				typ, att = gatehouse.EnrollmentGroup, gatehouse.AttestSymmetricKey
			case i%100 == 1:
				typ, att = gatehouse.EnrollmentGroup, gatehouse.AttestX509
			case i%3 == 0:
				att = gatehouse.AttestSymmetricKey
			case i%3 == 1:
				att = gatehouse.AttestToken
			}
			e := &gatehouse.Enrollment{
				ID: fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15), Scope: scope, Type: typ, Enabled: true,
				Attestation: gatehouse.Attestation{Type: att}, InitialTags: map[string]string{"site": fmt.Sprint(i % 40)},
				CreatedAt: ts(), UpdatedAt: ts(), ETag: "1", SealedSecrets: make([]byte, 80),
			}
			if err := tx.CreateEnrollment(e); err != nil {
				return err
			}
		}
		return nil
	})

	// selective: the planner must pick an index on its own; uses: and this
	// one, in page order.
	enrollment := func(name string, f gatehouse.EnrollmentFilter, selective bool, uses string) planCase {
		f.Scope, f.Limit = "acme", 100
		query, args := postgres.ListEnrollmentsQuery(f)
		pc := planCase{name: name, query: query, args: args, selective: selective, uses: uses}
		if uses != "" {
			pc.inOrder = "one type and attestation type"
		}
		return pc
	}
	checkPlans(t, conn, []string{"enrollments"}, []planCase{
		enrollment("all", gatehouse.EnrollmentFilter{}, true, ""),
		enrollment("page", gatehouse.EnrollmentFilter{After: "8000000000000000"}, true, ""),
		enrollment("group-symmetric", gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentGroup, Attestation: gatehouse.AttestSymmetricKey}, true, "enrollments_type_attestation_idx"),
		enrollment("group-x509-page", gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentGroup, Attestation: gatehouse.AttestX509, After: "8000000000000000"}, true, "enrollments_type_attestation_idx"),
		enrollment("individual-x509", gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentIndividual, Attestation: gatehouse.AttestX509}, false, ""),
		enrollment("group", gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentGroup}, true, ""),
		enrollment("individual", gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentIndividual}, false, ""),
		enrollment("token", gatehouse.EnrollmentFilter{Attestation: gatehouse.AttestToken}, false, ""),
	})
}
