package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/jackc/pgx/v5"
)

// TestEnrollmentQueriesUseIndexes does for the enrollment list queries what
// TestQueriesUseIndexes does for devices: every shape has an index path
// (sequential scans disabled), and on a few thousand analysed rows the
// planner picks (scope, type, attestation_type, id) for one type and
// attestation type (the symmetric-key groups a registration tries), in page
// order, without a sort.
func TestEnrollmentQueriesUseIndexes(t *testing.T) {
	dsn := newDatabase(t)
	s := mustOpen(t, dsn)
	ctx := context.Background()
	for _, scope := range []string{"acme", "other"} {
		if err := s.Update(ctx, func(tx gatehouse.Tx) error {
			if err := tx.CreateScope(&gatehouse.Scope{ID: scope, CreatedAt: ts()}); err != nil {
				return err
			}
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
		}); err != nil {
			t.Fatalf("create enrollments: %v", err)
		}
	}
	conn := connect(t, dsn)
	if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		f         gatehouse.EnrollmentFilter
		selective bool   // the planner must pick an index on its own
		uses      string // and this one, in page order
	}{
		{"all", gatehouse.EnrollmentFilter{}, true, ""},
		{"page", gatehouse.EnrollmentFilter{After: "8000000000000000"}, true, ""},
		{"group-symmetric", gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentGroup, Attestation: gatehouse.AttestSymmetricKey}, true, "enrollments_type_attestation_idx"},
		{"group-x509-page", gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentGroup, Attestation: gatehouse.AttestX509, After: "8000000000000000"}, true, "enrollments_type_attestation_idx"},
		{"individual-x509", gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentIndividual, Attestation: gatehouse.AttestX509}, false, ""},
		{"group", gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentGroup}, true, ""},
		{"individual", gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentIndividual}, false, ""},
		{"token", gatehouse.EnrollmentFilter{Attestation: gatehouse.AttestToken}, false, ""},
	}
	explain := func(t *testing.T, f gatehouse.EnrollmentFilter) string {
		t.Helper()
		f.Scope, f.Limit = "acme", 100
		query, args := postgres.ListEnrollmentsQuery(f)
		rows, err := conn.Query(ctx, "EXPLAIN "+query, args...)
		if err != nil {
			t.Fatalf("EXPLAIN: %v", err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("EXPLAIN: %v", err)
		}
		return strings.Join(lines, "\n")
	}
	check := func(t *testing.T, plan string) {
		t.Helper()
		if strings.Contains(plan, "Seq Scan on enrollments ") {
			t.Errorf("plan reads enrollments sequentially:\n%s", plan)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
				t.Fatal(err)
			}
			check(t, explain(t, tc.f))
			if _, err := conn.Exec(ctx, `RESET enable_seqscan`); err != nil {
				t.Fatal(err)
			}
			plan := explain(t, tc.f)
			if testing.Verbose() {
				t.Logf("plan:\n%s", plan)
			}
			if tc.selective {
				check(t, plan)
			}
			if tc.uses != "" {
				if !strings.Contains(plan, " "+tc.uses+" ") {
					t.Errorf("plan does not use %s:\n%s", tc.uses, plan)
				}
				if strings.Contains(plan, "Sort") {
					t.Errorf("plan sorts; one type and attestation type should come in index order:\n%s", plan)
				}
			}
		})
	}
}
