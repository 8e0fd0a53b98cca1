package registry_test

import (
	"context"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// TestPatchEnrollmentKeepsStoredValues: an enrollment stored with values
// earlier versions accepted and this one refuses for new ones (a webhook
// URL with credentials, an endpoint with a named port) can still be
// patched, disabled first of all; a new such value is still refused.
func TestPatchEnrollmentKeepsStoredValues(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		ctx := context.Background()
		reg, admin := caNode(t, st)
		if _, err := reg.CreateEnrollment(ctx, admin, gatehouse.DefaultScope, registry.EnrollmentCreate{ID: "line", Type: gatehouse.EnrollmentGroup,
			Attestation:  gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey},
			PreProvision: &gatehouse.Webhook{URL: "https://hook.example.com/pre", Secret: "0123456789abcdef0123"},
			Allocation:   gatehouse.Allocation{Endpoints: []gatehouse.Endpoint{{Host: "hub.example.com"}}}}); err != nil {
			t.Fatal(err)
		}
		// As an earlier version stored it.
		if err := st.Update(ctx, func(tx gatehouse.Tx) error {
			e, err := tx.GetEnrollment(gatehouse.DefaultScope, "line")
			if err != nil {
				return err
			}
			prev := e.ETag
			e.PreProvision.URL = "https://user:pass@hook.example.com/pre"
			e.Allocation.Endpoints[0].Host = "hub.example.com:secure-mqtt"
			e.ETag = "legacy"
			return tx.UpdateEnrollment(e, prev)
		}); err != nil {
			t.Fatal(err)
		}
		disabled := false
		if _, err := reg.PatchEnrollment(ctx, admin, gatehouse.DefaultScope, "line", registry.EnrollmentPatch{Enabled: &disabled}, ""); err != nil {
			t.Errorf("disable an enrollment holding values stored by an earlier version: %v", err)
		}
		bad := gatehouse.Webhook{URL: "https://other:secret@hook.example.com/pre", Secret: "0123456789abcdef0123"}
		if _, err := reg.PatchEnrollment(ctx, admin, gatehouse.DefaultScope, "line", registry.EnrollmentPatch{PreProvision: &bad}, ""); gatehouse.ErrorCode(err) != gatehouse.EInvalid {
			t.Errorf("a new webhook URL with credentials: got %v, want invalid", err)
		}
		eps := gatehouse.Allocation{Endpoints: []gatehouse.Endpoint{{Host: "hub.example.com:0"}}}
		if _, err := reg.PatchEnrollment(ctx, admin, gatehouse.DefaultScope, "line", registry.EnrollmentPatch{Allocation: &eps}, ""); gatehouse.ErrorCode(err) != gatehouse.EInvalid {
			t.Errorf("a new endpoint with port 0: got %v, want invalid", err)
		}
	})
}
