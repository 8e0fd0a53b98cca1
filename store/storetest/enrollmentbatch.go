package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

// testEnrollmentBatch covers GetEnrollments and CreateEnrollments: the bulk
// path of enrollment import.
func testEnrollmentBatch(t *testing.T, newStore NewStore) {
	ctx := context.Background()

	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "other")
		// More than a chunk and a lookup chunk, with every kind of member.
		var es, want []*gatehouse.Enrollment
		for i := range 1203 {
			e := newEnrollment("acme", fmt.Sprintf("enr-%05d", i), gatehouse.EnrollmentIndividual, attestationTypes[i%3])
			e.InitialTags = map[string]string{"n": fmt.Sprint(i)}
			if i%2 == 0 {
				e.InitialConfig = []byte(fmt.Sprintf(`{ "n": %d }`, i)) // kept byte for byte
			}
			if e.Attestation.Type == gatehouse.AttestToken {
				e.Attestation.TokenHash = der(byte(i), 32)
				e.Attestation.MaxUses = 1
				e.Attestation.ExpiresAt = timePtr(now())
			}
			es = append(es, e)
			want = append(want, cloneEnrollment(e))
		}
		update(t, s, func(tx gatehouse.Tx) error { return tx.CreateEnrollments(es) })
		for _, i := range []int{0, 63, 64, 500, 1202} {
			if diff := cmp.Diff(want[i], getEnrollment(t, s, "acme", want[i].ID)); diff != "" {
				t.Errorf("enrollment %d (-want +got):\n%s", i, diff)
			}
		}
		update(t, s, func(tx gatehouse.Tx) error {
			ids := []string{"enr-00000", "enr-01202", "missing", "enr-00700"}
			got, err := tx.GetEnrollments("acme", ids)
			if err != nil {
				return err
			}
			if len(got) != 3 || got["missing"] != nil {
				t.Errorf("GetEnrollments: got %d, want 3 without missing", len(got))
			}
			if diff := cmp.Diff(want[700], got["enr-00700"]); diff != "" {
				t.Errorf("GetEnrollments(enr-00700) (-want +got):\n%s", diff)
			}
			if other, err := tx.GetEnrollments("other", ids); err != nil || len(other) != 0 {
				t.Errorf("GetEnrollments in another scope: got %d, %v; want none", len(other), err)
			}
			many := make([]string, 0, 1300)
			for i := range 1300 {
				many = append(many, fmt.Sprintf("enr-%05d", i))
			}
			if all, err := tx.GetEnrollments("acme", many); err != nil || len(all) != 1203 {
				t.Errorf("GetEnrollments of 1300 IDs: got %d, %v; want 1203", len(all), err)
			}
			if none, err := tx.GetEnrollments("acme", nil); err != nil || len(none) != 0 {
				t.Errorf("GetEnrollments of none: got %d, %v", len(none), err)
			}
			return nil
		})
	})

	t.Run("ConflictWritesNothing", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		createEnrollments(t, s, newEnrollment("acme", "taken", gatehouse.EnrollmentIndividual, gatehouse.AttestX509))
		es := []*gatehouse.Enrollment{
			newEnrollment("acme", "new-1", gatehouse.EnrollmentIndividual, gatehouse.AttestX509),
			newEnrollment("acme", "taken", gatehouse.EnrollmentIndividual, gatehouse.AttestX509),
			newEnrollment("acme", "new-2", gatehouse.EnrollmentIndividual, gatehouse.AttestX509),
		}
		update(t, s, func(tx gatehouse.Tx) error {
			wantCode(t, "CreateEnrollments with a taken ID", tx.CreateEnrollments(es), gatehouse.EConflict)
			// The transaction is still usable, and nothing of the batch is in it.
			if _, err := tx.GetEnrollment("acme", "new-1"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
				t.Errorf("new-1 after a failed batch: got %v, want not_found", err)
			}
			return tx.CreateEnrollments(es[2:])
		})
		if _, err := s.GetEnrollment(ctx, "acme", "new-1"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("new-1 committed: got %v, want not_found", err)
		}
		getEnrollment(t, s, "acme", "new-2")
	})
}
