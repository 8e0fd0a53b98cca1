package registry_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// caRegistry is a node's registry over st with the test keyring and the
// installation CA. Two on one store are two nodes of one installation.
func caRegistry(tb testing.TB, st gatehouse.Store, opts ...registry.Option) *registry.Service {
	tb.Helper()
	root, err := ca.LoadOrCreateInstallationCA(context.Background(), st, testKeyring(), time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	return registry.New(st, append([]registry.Option{registry.WithCA(root, testKeyring())}, opts...)...)
}

// caNode is caRegistry with the default scope and an installation admin.
func caNode(tb testing.TB, st gatehouse.Store, opts ...registry.Option) (*registry.Service, *gatehouse.Principal) {
	tb.Helper()
	ctx := context.Background()
	reg := caRegistry(tb, st, opts...)
	if err := reg.EnsureScope(ctx, gatehouse.DefaultScope); err != nil {
		tb.Fatal(err)
	}
	grant, err := reg.CreateGlobalAdminToken(ctx, "admin")
	if err != nil {
		tb.Fatal(err)
	}
	admin, err := reg.Authenticate(ctx, grant.Secret)
	if err != nil {
		tb.Fatal(err)
	}
	return reg, admin
}

// provisionNode is caNode with a symmetric-key group enrollment "line" (at
// most max devices; 0: any number).
func provisionNode(t *testing.T, st gatehouse.Store, max int) (*registry.Service, *gatehouse.Principal) {
	t.Helper()
	reg, admin := caNode(t, st)
	if _, err := reg.CreateEnrollment(context.Background(), admin, gatehouse.DefaultScope, registry.EnrollmentCreate{ID: "line", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}, InitialTags: map[string]string{"site": "a"},
		MaxRegistrations: max}); err != nil {
		t.Fatal(err)
	}
	return reg, admin
}

func commitFor(id string, snapshot *gatehouse.Enrollment) registry.ProvisionCommit {
	return registry.ProvisionCommit{Scope: gatehouse.DefaultScope, RegistrationID: id, EnrollmentID: "line", DeviceID: id,
		OperationID: "op-" + id, Dialect: "native", ProvedWith: gatehouse.CredentialSymmetricKey, KeySlot: "primary", Enrollment: snapshot}
}

// TestProvisionQuotaUnderConcurrency: registrations decided with the
// attestation's (stale) copy of the enrollment still count against its
// maximum under its row: of 24 concurrent new devices, exactly the maximum
// get in, and the enrollment counts them.
func TestProvisionQuotaUnderConcurrency(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		ctx := context.Background()
		reg, admin := provisionNode(t, st, 5)
		snapshot, err := st.GetEnrollment(ctx, gatehouse.DefaultScope, "line")
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			ok, full int
		)
		for i := range 24 {
			wg.Go(func() {
				_, err := reg.CommitProvision(ctx, commitFor(fmt.Sprintf("dev-%02d", i), snapshot))
				mu.Lock()
				defer mu.Unlock()
				switch gatehouse.ErrorCode(err) {
				case "":
					ok++
				case gatehouse.EQuotaExceeded:
					full++
				default:
					t.Errorf("dev-%02d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if ok != 5 || full != 19 {
			t.Errorf("got %d registered and %d refused for the quota, want 5 and 19", ok, full)
		}
		e, err := reg.GetEnrollment(ctx, admin, gatehouse.DefaultScope, "line")
		if err != nil {
			t.Fatal(err)
		}
		if e.Registrations != 5 {
			t.Errorf("the enrollment counts %d registrations, want 5", e.Registrations)
		}
	})
}

// TestProvisionWithStaleEnrollment: when the enrollment's settings changed
// after the attestation read it, the registration follows the stored
// settings (new initial tags; disabled: refused), not the copy.
func TestProvisionWithStaleEnrollment(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		ctx := context.Background()
		reg, admin := provisionNode(t, st, 0)
		snapshot, err := st.GetEnrollment(ctx, gatehouse.DefaultScope, "line")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.PatchEnrollment(ctx, admin, gatehouse.DefaultScope, "line", registry.EnrollmentPatch{InitialTags: map[string]string{"site": "b"}}, ""); err != nil {
			t.Fatal(err)
		}
		out, err := reg.CommitProvision(ctx, commitFor("dev-tags", snapshot))
		if err != nil {
			t.Fatal(err)
		}
		if got := out.Device.Tags["site"]; got != "b" {
			t.Errorf("initial tag site=%q, want the stored enrollment's %q, not the attestation's copy", got, "b")
		}
		disabled := false
		if _, err := reg.PatchEnrollment(ctx, admin, gatehouse.DefaultScope, "line", registry.EnrollmentPatch{Enabled: &disabled}, ""); err != nil {
			t.Fatal(err)
		}
		_, err = reg.CommitProvision(ctx, commitFor("dev-late", snapshot))
		if code := gatehouse.ErrorCode(err); code != gatehouse.EEnrollmentDisabled {
			t.Errorf("registration after the enrollment was disabled: got %v, want %s", err, gatehouse.EEnrollmentDisabled)
		}
		if _, err := st.GetDevice(ctx, gatehouse.DefaultScope, "dev-late"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("the refused device is in the registry: %v", err)
		}
	})
}

// TestProvisionAfterKeyRotation: a registration whose enrollment's keys
// were rotated between its attestation and its commit is not admitted on
// the old proof: it is asked to retry (and attest again), and makes no
// device.
func TestProvisionAfterKeyRotation(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		ctx := context.Background()
		reg, admin := provisionNode(t, st, 0)
		snapshot, err := st.GetEnrollment(ctx, gatehouse.DefaultScope, "line")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.RotateEnrollmentKey(ctx, admin, gatehouse.DefaultScope, "line", "primary"); err != nil {
			t.Fatal(err)
		}
		_, err = reg.CommitProvision(ctx, commitFor("dev-rotated", snapshot))
		if code := gatehouse.ErrorCode(err); code != gatehouse.EUnavailable {
			t.Errorf("registration attested before a key rotation: got %v, want %s", err, gatehouse.EUnavailable)
		}
		if _, err := st.GetDevice(ctx, gatehouse.DefaultScope, "dev-rotated"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("the device is in the registry: %v", err)
		}
	})
}

// TestProvisionCountsNewDevicesOnly: registering a device again (an
// idempotent repeat, a re-provisioning) does not count against the
// enrollment's maximum; a new device does.
func TestProvisionCountsNewDevicesOnly(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		ctx := context.Background()
		reg, admin := provisionNode(t, st, 2)
		// Never: a repeat answers the first assignment again (its substatus
		// included); the device is still not new.
		never := gatehouse.ReprovisionNever
		if _, err := reg.PatchEnrollment(ctx, admin, gatehouse.DefaultScope, "line", registry.EnrollmentPatch{Reprovision: &never}, ""); err != nil {
			t.Fatal(err)
		}
		for _, withSnapshot := range []bool{true, false} {
			for range 3 {
				var snapshot *gatehouse.Enrollment
				if withSnapshot {
					var err error
					if snapshot, err = st.GetEnrollment(ctx, gatehouse.DefaultScope, "line"); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := reg.CommitProvision(ctx, commitFor("dev-again", snapshot)); err != nil {
					t.Fatalf("registering dev-again (snapshot %v): %v", withSnapshot, err)
				}
			}
		}
		e, err := reg.GetEnrollment(ctx, admin, gatehouse.DefaultScope, "line")
		if err != nil {
			t.Fatal(err)
		}
		if e.Registrations != 1 {
			t.Errorf("six registrations of one device counted %d, want 1", e.Registrations)
		}
		if _, err := reg.CommitProvision(ctx, commitFor("dev-second", nil)); err != nil {
			t.Errorf("a second device under a maximum of 2: %v", err)
		}
		_, err = reg.CommitProvision(ctx, commitFor("dev-third", nil))
		if code := gatehouse.ErrorCode(err); code != gatehouse.EQuotaExceeded {
			t.Errorf("a third device under a maximum of 2: got %v, want %s", err, gatehouse.EQuotaExceeded)
		}

		// An operator lowers the maximum below the count to stop new
		// devices: the devices counted still register again.
		one, migrate := 1, gatehouse.ReprovisionMigrate
		if _, err := reg.PatchEnrollment(ctx, admin, gatehouse.DefaultScope, "line", registry.EnrollmentPatch{MaxRegistrations: &one, Reprovision: &migrate}, ""); err != nil {
			t.Fatal(err)
		}
		for _, withSnapshot := range []bool{true, false} {
			var snapshot *gatehouse.Enrollment
			if withSnapshot {
				if snapshot, err = st.GetEnrollment(ctx, gatehouse.DefaultScope, "line"); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := reg.CommitProvision(ctx, commitFor("dev-second", snapshot)); err != nil {
				t.Errorf("a counted device under a maximum lowered below the count (snapshot %v): %v", withSnapshot, err)
			}
		}
		_, err = reg.CommitProvision(ctx, commitFor("dev-fourth", nil))
		if code := gatehouse.ErrorCode(err); code != gatehouse.EQuotaExceeded {
			t.Errorf("a new device over the lowered maximum: got %v, want %s", err, gatehouse.EQuotaExceeded)
		}
	})
}
