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

// attestationCopy reads the enrollment "line" as the attestation would, or,
// if !read, returns nil: the transaction then reads it itself.
func attestationCopy(t *testing.T, st gatehouse.Store, read bool) *gatehouse.Enrollment {
	t.Helper()
	if !read {
		return nil
	}
	e, err := st.GetEnrollment(context.Background(), gatehouse.DefaultScope, "line")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// wantRefused registers id with the enrollment copy snapshot and wants it
// refused with code, and no device left behind.
func wantRefused(t *testing.T, reg *registry.Service, st gatehouse.Store, id string, snapshot *gatehouse.Enrollment, code, what string) {
	t.Helper()
	_, err := reg.CommitProvision(context.Background(), commitFor(id, snapshot))
	if got := gatehouse.ErrorCode(err); got != code {
		t.Errorf("%s: got %v, want %s", what, err, code)
	}
	if _, err := st.GetDevice(context.Background(), gatehouse.DefaultScope, id); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
		t.Errorf("%s: the refused device %s is in the registry (%v)", what, id, err)
	}
}

// TestProvisionQuotaUnderConcurrency: registrations decided with the
// attestation's (stale) copy of the enrollment still count against its
// maximum under its row: of 24 concurrent new devices, exactly the maximum
// get in, and the enrollment counts them.
func TestProvisionQuotaUnderConcurrency(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		ctx := context.Background()
		reg, admin := provisionNode(t, st, 5)
		snapshot := attestationCopy(t, st, true)
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
		snapshot := attestationCopy(t, st, true)
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
		wantRefused(t, reg, st, "dev-late", snapshot, gatehouse.EEnrollmentDisabled, "registration after the enrollment was disabled")
	})
}

// TestProvisionAfterKeyRotation: a registration whose key was rotated
// between its attestation and its commit is not admitted on the old proof:
// it is asked to retry (and attest again), and makes no device. A rotation
// of the other slot's key does not disturb it.
func TestProvisionAfterKeyRotation(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		ctx := context.Background()
		reg, admin := provisionNode(t, st, 0)
		snapshot := attestationCopy(t, st, true)
		// The other slot's key changes: the device's proof (primary) holds.
		if _, err := reg.RotateEnrollmentKey(ctx, admin, gatehouse.DefaultScope, "line", "secondary"); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.CommitProvision(ctx, commitFor("dev-other-slot", snapshot)); err != nil {
			t.Errorf("registration with the primary key, the secondary rotated meanwhile: %v", err)
		}
		if _, err := reg.RotateEnrollmentKey(ctx, admin, gatehouse.DefaultScope, "line", "primary"); err != nil {
			t.Fatal(err)
		}
		wantRefused(t, reg, st, "dev-rotated", snapshot, gatehouse.EUnavailable, "registration attested before a key rotation")
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
				snapshot := attestationCopy(t, st, withSnapshot)
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
		wantRefused(t, reg, st, "dev-third", nil, gatehouse.EQuotaExceeded, "a third device under a maximum of 2")

		// An operator lowers the maximum below the count to stop new
		// devices: the devices counted still register again.
		one, migrate := 1, gatehouse.ReprovisionMigrate
		if _, err := reg.PatchEnrollment(ctx, admin, gatehouse.DefaultScope, "line", registry.EnrollmentPatch{MaxRegistrations: &one, Reprovision: &migrate}, ""); err != nil {
			t.Fatal(err)
		}
		for _, withSnapshot := range []bool{true, false} {
			snapshot := attestationCopy(t, st, withSnapshot)
			if _, err := reg.CommitProvision(ctx, commitFor("dev-second", snapshot)); err != nil {
				t.Errorf("a counted device under a maximum lowered below the count (snapshot %v): %v", withSnapshot, err)
			}
		}
		wantRefused(t, reg, st, "dev-fourth", nil, gatehouse.EQuotaExceeded, "a new device over the lowered maximum")
	})
}

// TestProvisionTokenUsesWithStaleCopy: a bootstrap token's uses are
// counted against its maximum under the enrollment's row even when the
// registration was decided with a copy read before the others counted:
// the use past the maximum is refused as a failed attestation (as when the
// copy shows it), and leaves nothing.
func TestProvisionTokenUsesWithStaleCopy(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		ctx := context.Background()
		reg, admin := caNode(t, st)
		if _, err := reg.CreateEnrollment(ctx, admin, gatehouse.DefaultScope, registry.EnrollmentCreate{ID: "line", Type: gatehouse.EnrollmentGroup,
			Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, MaxUses: 2}}); err != nil {
			t.Fatal(err)
		}
		snapshot := attestationCopy(t, st, true) // no use counted yet
		commit := func(id string) registry.ProvisionCommit {
			c := commitFor(id, snapshot)
			c.ProvedWith, c.KeySlot, c.ConsumeToken = gatehouse.CredentialToken, "", true
			return c
		}
		for _, id := range []string{"dev-1", "dev-2"} {
			if _, err := reg.CommitProvision(ctx, commit(id)); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
		}
		_, err := reg.CommitProvision(ctx, commit("dev-3"))
		if got := gatehouse.ErrorCode(err); got != gatehouse.EAttestationFailed {
			t.Errorf("third use of a token of 2: got %v, want %s", err, gatehouse.EAttestationFailed)
		}
		if _, err := st.GetDevice(ctx, gatehouse.DefaultScope, "dev-3"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("the refused device dev-3 is in the registry (%v)", err)
		}
		e, err := st.GetEnrollment(ctx, gatehouse.DefaultScope, "line")
		if err != nil {
			t.Fatal(err)
		}
		if e.Attestation.Uses != 2 || e.Registrations != 2 {
			t.Errorf("the enrollment counts %d uses and %d registrations, want 2 and 2", e.Attestation.Uses, e.Registrations)
		}
	})
}
