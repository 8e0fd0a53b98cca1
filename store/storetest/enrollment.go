package storetest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

var (
	enrollmentTypes  = []gatehouse.EnrollmentType{gatehouse.EnrollmentIndividual, gatehouse.EnrollmentGroup}
	attestationTypes = []gatehouse.AttestationType{gatehouse.AttestSymmetricKey, gatehouse.AttestX509, gatehouse.AttestToken}
)

// cloneEnrollment returns a deep copy of e, so that a test's expectation
// cannot alias what it handed the store.
func cloneEnrollment(e *gatehouse.Enrollment) *gatehouse.Enrollment {
	c := *e
	if e.Attestation.ExpiresAt != nil {
		c.Attestation.ExpiresAt = timePtr(*e.Attestation.ExpiresAt)
	}
	c.Attestation.TokenHash = bytes.Clone(e.Attestation.TokenHash)
	c.InitialTags = maps.Clone(e.InitialTags)
	c.InitialConfig = bytes.Clone(e.InitialConfig)
	c.Allocation.Endpoints = slices.Clone(e.Allocation.Endpoints)
	if e.Allocation.Webhook != nil {
		w := *e.Allocation.Webhook
		c.Allocation.Webhook = &w
	}
	if e.PreProvision != nil {
		w := *e.PreProvision
		c.PreProvision = &w
	}
	if e.ExpiresAt != nil {
		c.ExpiresAt = timePtr(*e.ExpiresAt)
	}
	c.SealedSecrets = bytes.Clone(e.SealedSecrets)
	return &c
}

// newEnrollment returns a small enabled enrollment as the registry would
// store it.
func newEnrollment(scope, id string, typ gatehouse.EnrollmentType, att gatehouse.AttestationType) *gatehouse.Enrollment {
	t := now()
	return &gatehouse.Enrollment{
		ID: id, Scope: scope, Type: typ, Enabled: true,
		Attestation:   gatehouse.Attestation{Type: att},
		Credentials:   gatehouse.CredentialPolicy{Certificate: gatehouse.CertOptional},
		Allocation:    gatehouse.Allocation{Policy: gatehouse.AllocateStatic, Endpoints: []gatehouse.Endpoint{{Host: "mqtt.example.com"}}},
		CreatedAt:     t,
		UpdatedAt:     t,
		ETag:          "1",
		SealedSecrets: der(byte(len(id)), 40),
	}
}

func createEnrollments(tb testing.TB, s gatehouse.Store, es ...*gatehouse.Enrollment) {
	tb.Helper()
	update(tb, s, func(tx gatehouse.Tx) error {
		for _, e := range es {
			if err := tx.CreateEnrollment(e); err != nil {
				return fmt.Errorf("create enrollment %s/%s: %w", e.Scope, e.ID, err)
			}
		}
		return nil
	})
}

func getEnrollment(tb testing.TB, s gatehouse.Store, scope, id string) *gatehouse.Enrollment {
	tb.Helper()
	e, err := s.GetEnrollment(context.Background(), scope, id)
	if err != nil {
		tb.Fatalf("GetEnrollment(%s, %s): %v", scope, id, err)
	}
	checkUTC(tb, "enrollment "+id, &e.CreatedAt, &e.UpdatedAt, e.ExpiresAt, e.Attestation.ExpiresAt)
	return e
}

func enrollmentIDs(es []*gatehouse.Enrollment) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func testEnrollments(t *testing.T, newStore NewStore) {
	ctx := context.Background()

	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		t0 := now()
		zone := time.FixedZone("UTC-7", -7*3600) // read back in UTC, the same instant
		full := &gatehouse.Enrollment{
			ID: "group-1", Scope: "acme", Type: gatehouse.EnrollmentGroup, Enabled: true,
			Attestation: gatehouse.Attestation{
				Type: gatehouse.AttestToken, PrimaryKey: "cHJpbWFyeQ==", SecondaryKey: "c2Vjb25kYXJ5",
				Certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", Thumbprint: fmt.Sprintf("%064x", 99),
				Verified: true, VerificationCode: "A1B2C3", Token: "tok-<&>",
				TokenHash: []byte{0, 0xff, 1, 0}, MaxUses: 50, Uses: 7, ExpiresAt: timePtr(t0.Add(48 * time.Hour).In(zone)),
			},
			// HTML characters (escaped by encoding/json), a NUL (which a
			// PostgreSQL jsonb column would refuse), non-ASCII and U+2028.
			DeviceIDTemplate: "{enrollmentId}-{registrationId}<&>\x00é\u2028",
			InitialTags:      map[string]string{"env": "prod", "site": "berlin-1", "empty": ""},
			// Not compact, keys out of order: kept byte for byte.
			InitialConfig: []byte("{ \"z\": [1, 2.50, 1e3],\n\t\"a\": {\"b\": null}, \"s\": \"\\u00e9\" }"),
			Credentials:   gatehouse.CredentialPolicy{Certificate: gatehouse.CertRequired, Validity: gatehouse.Duration(90 * 24 * time.Hour)},
			Allocation: gatehouse.Allocation{Policy: gatehouse.AllocateCustom,
				Endpoints: []gatehouse.Endpoint{{Host: "a.example.com", Weight: 3}, {Host: "b.example.com"}},
				Webhook:   &gatehouse.Webhook{URL: "https://alloc.example.com/hook?x=1&y=2", Timeout: gatehouse.Duration(1500 * time.Millisecond)},
			},
			Reprovision:      gatehouse.ReprovisionReset,
			PreProvision:     &gatehouse.Webhook{URL: "https://pre.example.com/", Secret: "write-only", Timeout: gatehouse.Duration(time.Second)},
			MaxRegistrations: 1000, Registrations: 42,
			ExpiresAt: timePtr(t0.Add(365 * 24 * time.Hour)),
			CreatedAt: t0.Add(-time.Hour).In(zone), UpdatedAt: t0,
			ETag:          "etag-full",
			SealedSecrets: der(3, 200),
		}
		// Only what every enrollment has: every optional field at its zero.
		minimal := &gatehouse.Enrollment{ID: "dev-1", Scope: "acme", Type: gatehouse.EnrollmentIndividual,
			Attestation: gatehouse.Attestation{Type: gatehouse.AttestX509}, CreatedAt: t0, UpdatedAt: t0, ETag: "1"}
		// InitialConfig that is not JSON at all still comes back as given.
		notJSON := newEnrollment("acme", "not-json", gatehouse.EnrollmentIndividual, gatehouse.AttestSymmetricKey)
		notJSON.InitialConfig = []byte("{not json\xff")
		for _, e := range []*gatehouse.Enrollment{full, minimal, notJSON} {
			want := cloneEnrollment(e)
			want.CreatedAt, want.Attestation.ExpiresAt = want.CreatedAt.UTC(), utc(want.Attestation.ExpiresAt)
			update(t, s, func(tx gatehouse.Tx) error {
				if err := tx.CreateEnrollment(e); err != nil {
					return err
				}
				// A Tx sees its own writes, and GetEnrollment locks them.
				got, err := tx.GetEnrollment(e.Scope, e.ID)
				if err != nil {
					return err
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("tx.GetEnrollment(%s) in the creating tx (-want +got):\n%s", e.ID, diff)
				}
				return nil
			})
			if diff := cmp.Diff(want, getEnrollment(t, s, e.Scope, e.ID)); diff != "" {
				t.Errorf("GetEnrollment(%s) (-want +got):\n%s", e.ID, diff)
			}
			list, err := s.ListEnrollments(ctx, gatehouse.EnrollmentFilter{Scope: "acme", Type: e.Type, Attestation: e.Attestation.Type, Limit: 10})
			if err != nil || len(list) != 1 {
				t.Fatalf("ListEnrollments for %s: got %v (err %v), want it alone", e.ID, enrollmentIDs(list), err)
			}
			if diff := cmp.Diff(want, list[0]); diff != "" {
				t.Errorf("ListEnrollments(%s) (-want +got):\n%s", e.ID, diff)
			}
		}

		// The normalisations: empty maps, slices and byte values read back
		// as nil.
		empty := newEnrollment("acme", "empty", gatehouse.EnrollmentGroup, gatehouse.AttestSymmetricKey)
		empty.InitialTags, empty.InitialConfig, empty.Allocation.Endpoints = map[string]string{}, []byte{}, []gatehouse.Endpoint{}
		empty.Attestation.TokenHash, empty.SealedSecrets = []byte{}, []byte{}
		createEnrollments(t, s, empty)
		got := getEnrollment(t, s, "acme", "empty")
		if got.InitialTags != nil || got.InitialConfig != nil || got.Allocation.Endpoints != nil ||
			got.Attestation.TokenHash != nil || got.SealedSecrets != nil {
			t.Errorf("empty values: got tags %#v config %#v endpoints %#v token hash %#v sealed %#v, want all nil",
				got.InitialTags, got.InitialConfig, got.Allocation.Endpoints, got.Attestation.TokenHash, got.SealedSecrets)
		}
	})

	t.Run("Duplicate", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		orig := newEnrollment("acme", "e1", gatehouse.EnrollmentIndividual, gatehouse.AttestX509)
		want := cloneEnrollment(orig)
		createEnrollments(t, s, orig)
		dup := newEnrollment("acme", "e1", gatehouse.EnrollmentGroup, gatehouse.AttestToken)
		dup.ETag = "dup"
		err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateEnrollment(dup) })
		wantCode(t, "CreateEnrollment duplicate", err, gatehouse.EConflict)
		if diff := cmp.Diff(want, getEnrollment(t, s, "acme", "e1")); diff != "" {
			t.Errorf("after duplicate (-want +got):\n%s", diff)
		}
		if list, err := s.ListEnrollments(ctx, gatehouse.EnrollmentFilter{Scope: "acme", Type: gatehouse.EnrollmentGroup, Limit: 10}); err != nil || len(list) != 0 {
			t.Errorf("ListEnrollments(group) after duplicate: got %v (err %v), want none", enrollmentIDs(list), err)
		}
		// The same ID in another scope is another enrollment.
		createEnrollments(t, s, inScope(dup, "beta"))
		if got := getEnrollment(t, s, "beta", "e1"); got.ETag != "dup" {
			t.Errorf("beta/e1: got etag %q, want dup", got.ETag)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		createEnrollments(t, s, newEnrollment("acme", "e1", gatehouse.EnrollmentIndividual, gatehouse.AttestX509))
		for _, tc := range []struct{ scope, id string }{{"acme", "e2"}, {"beta", "e1"}, {"nope", "e1"}} {
			name := tc.scope + "/" + tc.id
			_, err := s.GetEnrollment(ctx, tc.scope, tc.id)
			wantCode(t, "GetEnrollment "+name, err, gatehouse.ENotFound)
			err = s.Update(ctx, func(tx gatehouse.Tx) error {
				_, err := tx.GetEnrollment(tc.scope, tc.id)
				return err
			})
			wantCode(t, "tx.GetEnrollment "+name, err, gatehouse.ENotFound)
			err = s.Update(ctx, func(tx gatehouse.Tx) error {
				return tx.UpdateEnrollment(newEnrollment(tc.scope, tc.id, gatehouse.EnrollmentIndividual, gatehouse.AttestX509), "1")
			})
			wantCode(t, "UpdateEnrollment "+name, err, gatehouse.ENotFound)
			err = s.Update(ctx, func(tx gatehouse.Tx) error { return tx.DeleteEnrollment(tc.scope, tc.id) })
			wantCode(t, "DeleteEnrollment "+name, err, gatehouse.ENotFound)
		}
		if _, err := s.GetEnrollment(ctx, "beta", "e1"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("UpdateEnrollment of a missing enrollment created it: GetEnrollment got %v", err)
		}
		if got := getEnrollment(t, s, "acme", "e1"); got.ETag != "1" {
			t.Errorf("acme/e1 after the misses: got etag %q, want 1", got.ETag)
		}
	})

	t.Run("Update", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		orig := newEnrollment("acme", "e1", gatehouse.EnrollmentIndividual, gatehouse.AttestX509)
		orig.InitialTags = map[string]string{"a": "1"}
		orig.InitialConfig = []byte(`{"a":1}`)
		orig.Attestation.TokenHash = []byte("hash-1")
		createEnrollments(t, s, orig, newEnrollment("acme", "e2", gatehouse.EnrollmentIndividual, gatehouse.AttestX509))

		// A stale etag changes nothing.
		stale := cloneEnrollment(orig)
		stale.Enabled, stale.ETag = false, "stale-write"
		err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.UpdateEnrollment(stale, "0") })
		wantCode(t, "UpdateEnrollment with a stale etag", err, gatehouse.EPreconditionFailed)
		if got := getEnrollment(t, s, "acme", "e1"); got.ETag != "1" || !got.Enabled {
			t.Errorf("after a stale UpdateEnrollment: got etag %q enabled %v, want 1 true", got.ETag, got.Enabled)
		}

		// Every field is replaced, the indexed type and attestation type too.
		t0 := now()
		var want *gatehouse.Enrollment
		update(t, s, func(tx gatehouse.Tx) error {
			e, err := tx.GetEnrollment("acme", "e1")
			if err != nil {
				return err
			}
			prev := e.ETag
			e.Type, e.Attestation = gatehouse.EnrollmentGroup, gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey, Uses: 3}
			e.Enabled, e.DeviceIDTemplate = false, "x-{registrationId}"
			e.InitialTags, e.InitialConfig = map[string]string{"b": "2"}, []byte(" [true] ")
			e.Allocation = gatehouse.Allocation{Policy: gatehouse.AllocateHashed, Endpoints: []gatehouse.Endpoint{{Host: "h1", Weight: 2}}}
			e.Reprovision, e.PreProvision = gatehouse.ReprovisionNever, &gatehouse.Webhook{URL: "https://x/"}
			e.MaxRegistrations, e.Registrations, e.ExpiresAt = 5, 4, timePtr(t0.Add(time.Hour))
			e.CreatedAt, e.UpdatedAt, e.ETag = t0.Add(-time.Minute), t0, "2"
			e.SealedSecrets = []byte("sealed-2")
			want = cloneEnrollment(e)
			if err := tx.UpdateEnrollment(e, prev); err != nil {
				return err
			}
			got, err := tx.GetEnrollment("acme", "e1")
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("tx.GetEnrollment after UpdateEnrollment (-want +got):\n%s", diff)
			}
			// The old etag is stale now, within the same transaction too.
			wantCode(t, "second UpdateEnrollment with the old etag", tx.UpdateEnrollment(e, prev), gatehouse.EPreconditionFailed)
			return nil
		})
		if diff := cmp.Diff(want, getEnrollment(t, s, "acme", "e1")); diff != "" {
			t.Errorf("after UpdateEnrollment (-want +got):\n%s", diff)
		}
		for _, tc := range []struct {
			f    gatehouse.EnrollmentFilter
			want []string
		}{
			{gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentGroup, Attestation: gatehouse.AttestSymmetricKey}, []string{"e1"}},
			{gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentIndividual, Attestation: gatehouse.AttestX509}, []string{"e2"}},
			{gatehouse.EnrollmentFilter{Attestation: gatehouse.AttestX509}, []string{"e2"}},
		} {
			tc.f.Scope, tc.f.Limit = "acme", 10
			got, err := s.ListEnrollments(ctx, tc.f)
			if err != nil || !slices.Equal(enrollmentIDs(got), tc.want) {
				t.Errorf("ListEnrollments(%+v) after changing e1's types: got %v (err %v), want %v", tc.f, enrollmentIDs(got), err, tc.want)
			}
		}

		// Back to nil and empty values.
		cleared := cloneEnrollment(want)
		cleared.InitialTags, cleared.InitialConfig, cleared.PreProvision, cleared.ExpiresAt = nil, nil, nil, nil
		cleared.Allocation, cleared.SealedSecrets, cleared.ETag = gatehouse.Allocation{}, nil, "3"
		update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateEnrollment(cleared, "2") })
		if diff := cmp.Diff(cleared, getEnrollment(t, s, "acme", "e1")); diff != "" {
			t.Errorf("after clearing (-want +got):\n%s", diff)
		}
		// The other enrollment is untouched.
		if got := getEnrollment(t, s, "acme", "e2"); got.ETag != "1" || got.Type != gatehouse.EnrollmentIndividual {
			t.Errorf("e2 after updating e1: got etag %q type %q", got.ETag, got.Type)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		createEnrollments(t, s,
			newEnrollment("acme", "e1", gatehouse.EnrollmentGroup, gatehouse.AttestX509),
			newEnrollment("acme", "e2", gatehouse.EnrollmentGroup, gatehouse.AttestX509),
			newEnrollment("beta", "e1", gatehouse.EnrollmentGroup, gatehouse.AttestX509))
		reg := newRegistration("acme", "dev-1", "e1")
		update(t, s, func(tx gatehouse.Tx) error { return tx.PutRegistration(reg) })
		update(t, s, func(tx gatehouse.Tx) error {
			if err := tx.DeleteEnrollment("acme", "e1"); err != nil {
				return err
			}
			// A Tx sees its own delete.
			_, err := tx.GetEnrollment("acme", "e1")
			wantCode(t, "tx.GetEnrollment after DeleteEnrollment", err, gatehouse.ENotFound)
			wantCode(t, "second DeleteEnrollment", tx.DeleteEnrollment("acme", "e1"), gatehouse.ENotFound)
			return nil
		})
		_, err := s.GetEnrollment(ctx, "acme", "e1")
		wantCode(t, "GetEnrollment after DeleteEnrollment", err, gatehouse.ENotFound)
		list, err := s.ListEnrollments(ctx, gatehouse.EnrollmentFilter{Scope: "acme", Type: gatehouse.EnrollmentGroup, Attestation: gatehouse.AttestX509})
		if err != nil || !slices.Equal(enrollmentIDs(list), []string{"e2"}) {
			t.Errorf("ListEnrollments after DeleteEnrollment: got %v (err %v), want [e2]", enrollmentIDs(list), err)
		}
		getEnrollment(t, s, "beta", "e1") // another scope's e1 stays
		// The registration record naming it stays.
		if got, err := s.GetRegistration(ctx, "acme", "dev-1"); err != nil || got.EnrollmentID != "e1" {
			t.Errorf("GetRegistration after DeleteEnrollment: got %+v (err %v), want the record", got, err)
		}
		// The ID can be used again.
		again := newEnrollment("acme", "e1", gatehouse.EnrollmentIndividual, gatehouse.AttestToken)
		want := cloneEnrollment(again)
		createEnrollments(t, s, again)
		if diff := cmp.Diff(want, getEnrollment(t, s, "acme", "e1")); diff != "" {
			t.Errorf("enrollment re-created after DeleteEnrollment (-want +got):\n%s", diff)
		}
	})

	// Read-modify-write of an enrollment's counter from many goroutines,
	// each in its own Update: none may be lost.
	t.Run("ConcurrentUpdates", func(t *testing.T) {
		const n = 24
		s := newStore(t)
		createScopes(t, s, "acme")
		e := newEnrollment("acme", "group", gatehouse.EnrollmentGroup, gatehouse.AttestSymmetricKey)
		e.ETag = "0"
		createEnrollments(t, s, e)
		parallel(t, n, func(int) error {
			return s.Update(ctx, func(tx gatehouse.Tx) error {
				e, err := tx.GetEnrollment("acme", "group")
				if err != nil {
					return err
				}
				prev := e.ETag
				e.Registrations++
				e.Attestation.Uses++
				e.ETag = strconv.Itoa(e.Registrations)
				return tx.UpdateEnrollment(e, prev)
			})
		})
		got := getEnrollment(t, s, "acme", "group")
		if got.Registrations != n || got.Attestation.Uses != n || got.ETag != strconv.Itoa(n) {
			t.Errorf("after %d increments: got registrations %d uses %d etag %q, want %d %d %q",
				n, got.Registrations, got.Attestation.Uses, got.ETag, n, n, strconv.Itoa(n))
		}
	})

	// CountEnrollmentUse: the counts move, within their limits and only
	// under the etag they were decided with; the settings, etag and
	// updatedAt stay; a refusal changes nothing.
	t.Run("CountUse", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		e := newEnrollment("acme", "tok", gatehouse.EnrollmentGroup, gatehouse.AttestToken)
		e.MaxRegistrations, e.Attestation.MaxUses = 3, 2
		createEnrollments(t, s, e)
		count := func(u gatehouse.EnrollmentUse) error {
			return s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CountEnrollmentUse(u) })
		}
		want := func(what string, regs, uses int) {
			t.Helper()
			got := getEnrollment(t, s, "acme", "tok")
			if got.Registrations != regs || got.Attestation.Uses != uses {
				t.Errorf("%s: got registrations %d uses %d, want %d %d", what, got.Registrations, got.Attestation.Uses, regs, uses)
			}
			got.Registrations, got.Attestation.Uses = 0, 0
			if diff := cmp.Diff(e, got); diff != "" {
				t.Errorf("%s: more than the counts changed (-want +got):\n%s", what, diff)
			}
		}
		use := gatehouse.EnrollmentUse{Scope: "acme", ID: "tok", ETag: "1", Registrations: 1, Uses: 1, MaxRegistrations: 3, MaxUses: 2}
		for range 2 {
			if err := count(use); err != nil {
				t.Fatalf("CountEnrollmentUse within the limits: %v", err)
			}
		}
		want("two uses", 2, 2)
		wantCode(t, "a third use of a token with two", count(use), gatehouse.EQuotaExceeded)
		want("after the refused use", 2, 2)
		noToken := use
		noToken.Uses, noToken.MaxUses = 0, 0
		if err := count(noToken); err != nil {
			t.Fatalf("a third registration of three: %v", err)
		}
		wantCode(t, "a fourth registration of three", count(noToken), gatehouse.EQuotaExceeded)
		want("after the refused registration", 3, 2)
		again := noToken
		again.Registrations = 0
		if err := count(again); err != nil {
			t.Errorf("a registration of an existing device (nothing counted): %v", err)
		}
		// Counts an operator's lower limit left above it block only what
		// adds to them.
		over := gatehouse.EnrollmentUse{Scope: "acme", ID: "tok", ETag: "1", Uses: 1, MaxRegistrations: 1, MaxUses: 2}
		wantCode(t, "a use of a token used up, with registrations over a lowered limit", count(over), gatehouse.EQuotaExceeded)
		over.Uses, over.MaxUses = 0, 0
		if err := count(over); err != nil {
			t.Errorf("nothing added, registrations above a lowered limit: %v", err)
		}
		stale := again
		stale.ETag = "0"
		wantCode(t, "a count decided with other settings", count(stale), gatehouse.EPreconditionFailed)
		missing := again
		missing.ID = "nope"
		wantCode(t, "a count on a missing enrollment", count(missing), gatehouse.ENotFound)
		want("after the refusals", 3, 2)

		// The counts survive a settings change made in a transaction that
		// read them, and the old etag no longer counts.
		if err := s.Update(ctx, func(tx gatehouse.Tx) error {
			cur, err := tx.GetEnrollment("acme", "tok")
			if err != nil {
				return err
			}
			cur.Enabled, cur.ETag = false, "2"
			return tx.UpdateEnrollment(cur, "1")
		}); err != nil {
			t.Fatal(err)
		}
		e.Enabled, e.ETag = false, "2"
		want("after a settings change", 3, 2)
		wantCode(t, "a count decided before the settings change", count(again), gatehouse.EPreconditionFailed)
	})

	// Many registrations of one enrollment at once, each decided with the
	// same copy: the limit holds exactly.
	t.Run("ConcurrentCountUse", func(t *testing.T) {
		const n, limit = 24, 17
		s := newStore(t)
		createScopes(t, s, "acme")
		e := newEnrollment("acme", "group", gatehouse.EnrollmentGroup, gatehouse.AttestSymmetricKey)
		e.MaxRegistrations = limit
		createEnrollments(t, s, e)
		var refused atomic.Int32
		parallel(t, n, func(int) error {
			err := s.Update(ctx, func(tx gatehouse.Tx) error {
				return tx.CountEnrollmentUse(gatehouse.EnrollmentUse{Scope: "acme", ID: "group", ETag: "1", Registrations: 1, MaxRegistrations: limit})
			})
			if gatehouse.ErrorCode(err) == gatehouse.EQuotaExceeded {
				refused.Add(1)
				return nil
			}
			return err
		})
		if got := getEnrollment(t, s, "acme", "group"); got.Registrations != limit || refused.Load() != n-limit {
			t.Errorf("%d registrations under a limit of %d: got %d counted, %d refused; want %d, %d", n, limit, got.Registrations, refused.Load(), limit, n-limit)
		}
	})

	t.Run("Rollback", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		orig := newEnrollment("acme", "e1", gatehouse.EnrollmentGroup, gatehouse.AttestX509)
		want := cloneEnrollment(orig)
		createEnrollments(t, s, orig, newEnrollment("acme", "e2", gatehouse.EnrollmentGroup, gatehouse.AttestX509))
		err := s.Update(ctx, func(tx gatehouse.Tx) error {
			if err := tx.CreateEnrollment(newEnrollment("acme", "e3", gatehouse.EnrollmentGroup, gatehouse.AttestX509)); err != nil {
				return err
			}
			up := cloneEnrollment(orig)
			up.Registrations, up.ETag = 9, "9"
			if err := tx.UpdateEnrollment(up, "1"); err != nil {
				return err
			}
			if err := tx.DeleteEnrollment("acme", "e2"); err != nil {
				return err
			}
			if err := tx.PutRegistration(newRegistration("acme", "r1", "e1")); err != nil {
				return err
			}
			return errBoom
		})
		if err != errBoom {
			t.Fatalf("Update: got %v, want %v", err, errBoom)
		}
		if diff := cmp.Diff(want, getEnrollment(t, s, "acme", "e1")); diff != "" {
			t.Errorf("e1 after rollback (-want +got):\n%s", diff)
		}
		getEnrollment(t, s, "acme", "e2")
		_, err = s.GetEnrollment(ctx, "acme", "e3")
		wantCode(t, "GetEnrollment(e3) after rollback", err, gatehouse.ENotFound)
		_, err = s.GetRegistration(ctx, "acme", "r1")
		wantCode(t, "GetRegistration(r1) after rollback", err, gatehouse.ENotFound)
	})

	t.Run("Filters", func(t *testing.T) { testEnrollmentFilters(t, newStore(t)) })
	t.Run("Pagination", func(t *testing.T) { testEnrollmentPagination(t, newStore(t)) })
}

// inScope returns a copy of e in another scope.
func inScope(e *gatehouse.Enrollment, scope string) *gatehouse.Enrollment {
	c := cloneEnrollment(e)
	c.Scope = scope
	return c
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	return timePtr(t.UTC())
}

// enrollmentDataset returns enrollments of every type x attestation type,
// several of each, with random IDs (so that ID order is not creation
// order), the same for every run of one seed.
func enrollmentDataset(scope string, seed uint64) []*gatehouse.Enrollment {
	r := rand.New(rand.NewPCG(seed, 13))
	var out []*gatehouse.Enrollment
	for i := range 12 {
		for _, typ := range enrollmentTypes {
			for _, att := range attestationTypes {
				e := newEnrollment(scope, fmt.Sprintf("%016x", r.Uint64()), typ, att)
				e.Enabled = i%3 != 0
				e.InitialTags = map[string]string{"i": strconv.Itoa(i)}
				e.Registrations = i
				out = append(out, e)
			}
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// enrollmentMatches is the reference semantics of an EnrollmentFilter.
func enrollmentMatches(f gatehouse.EnrollmentFilter, e *gatehouse.Enrollment) bool {
	return e.Scope == f.Scope && e.ID > f.After &&
		(f.Type == "" || e.Type == f.Type) &&
		(f.Attestation == "" || e.Attestation.Type == f.Attestation)
}

// listAllEnrollments pages through ListEnrollments with page size limit.
func listAllEnrollments(t *testing.T, s gatehouse.Store, f gatehouse.EnrollmentFilter, limit int) []*gatehouse.Enrollment {
	t.Helper()
	var out []*gatehouse.Enrollment
	f.Limit = limit
	for pages := 0; ; pages++ {
		page, err := s.ListEnrollments(context.Background(), f)
		if err != nil {
			t.Fatalf("ListEnrollments(%+v): %v", f, err)
		}
		if len(page) > limit {
			t.Fatalf("ListEnrollments returned %d enrollments, want at most %d", len(page), limit)
		}
		out = append(out, page...)
		if len(page) < limit {
			return out
		}
		if pages > 1000 {
			t.Fatalf("ListEnrollments pagination does not terminate")
		}
		f.After = page[len(page)-1].ID
	}
}

func testEnrollmentFilters(t *testing.T, s gatehouse.Store) {
	const scope = "acme"
	createScopes(t, s, scope, "other")
	all := enrollmentDataset(scope, 1)
	// The other scope holds the same IDs with other types: a filter that
	// leaks across scopes returns wrong enrollments.
	others := enrollmentDataset("other", 2)
	for i, e := range others {
		e.ID = all[i].ID
	}
	createEnrollments(t, s, all...)
	createEnrollments(t, s, others...)
	want := func(f gatehouse.EnrollmentFilter) []*gatehouse.Enrollment {
		var out []*gatehouse.Enrollment
		for _, e := range all {
			if enrollmentMatches(f, e) {
				out = append(out, e)
			}
		}
		slices.SortFunc(out, func(a, b *gatehouse.Enrollment) int { return strings.Compare(a.ID, b.ID) })
		return out
	}
	var filters []gatehouse.EnrollmentFilter
	for _, typ := range append([]gatehouse.EnrollmentType{""}, enrollmentTypes...) {
		for _, att := range append([]gatehouse.AttestationType{""}, attestationTypes...) {
			filters = append(filters, gatehouse.EnrollmentFilter{Type: typ, Attestation: att})
		}
	}
	// Values no enrollment has.
	filters = append(filters, gatehouse.EnrollmentFilter{Type: "nope"}, gatehouse.EnrollmentFilter{Attestation: "tpm"},
		gatehouse.EnrollmentFilter{Type: gatehouse.EnrollmentGroup, Attestation: "tpm"})
	for _, f := range filters {
		t.Run(fmt.Sprintf("type=%s,attestation=%s", f.Type, f.Attestation), func(t *testing.T) {
			f.Scope = scope
			w := want(f)
			for _, limit := range []int{1000, 5} {
				got := listAllEnrollments(t, s, f, limit)
				// Whole records, not just IDs.
				if diff := cmp.Diff(w, got); diff != "" {
					t.Errorf("limit %d: got %d enrollments, want %d (-want +got):\n%s", limit, len(got), len(w), diff)
				}
			}
			// From the middle on.
			if len(w) > 2 {
				f.After = w[len(w)/2].ID
				got := listAllEnrollments(t, s, f, 1000)
				if diff := cmp.Diff(want(f), got); diff != "" {
					t.Errorf("after %s (-want +got):\n%s", f.After, diff)
				}
			}
		})
	}

	t.Run("UnknownScope", func(t *testing.T) {
		got, err := s.ListEnrollments(context.Background(), gatehouse.EnrollmentFilter{Scope: "nope", Limit: 10})
		if err != nil && gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Fatalf("ListEnrollments(unknown scope): got %v, want nil or not_found", err)
		}
		if len(got) != 0 {
			t.Errorf("ListEnrollments(unknown scope): got %d enrollments, want 0", len(got))
		}
	})
}

// testEnrollmentPagination pages through a scope's enrollments while others
// are created before and after the cursor: every enrollment that existed
// throughout comes exactly once, in ascending ID order.
func testEnrollmentPagination(t *testing.T, s gatehouse.Store) {
	ctx := context.Background()
	createScopes(t, s, "acme")
	var initial []*gatehouse.Enrollment
	for i := 0; i < 120; i += 2 {
		initial = append(initial, newEnrollment("acme", fmt.Sprintf("e%03d", i), gatehouse.EnrollmentGroup, attestationTypes[i%2]))
	}
	createEnrollments(t, s, initial...)
	for fi, f := range []gatehouse.EnrollmentFilter{
		{Scope: "acme"},
		{Scope: "acme", Type: gatehouse.EnrollmentGroup},
		{Scope: "acme", Type: gatehouse.EnrollmentGroup, Attestation: attestationTypes[0]},
	} {
		f.Limit = 7
		seen := map[string]int{}
		prev := ""
		next := 1 // the next odd ID to create
		for page := 0; ; page++ {
			got, err := s.ListEnrollments(ctx, f)
			if err != nil {
				t.Fatalf("ListEnrollments: %v", err)
			}
			for _, e := range got {
				if e.ID <= prev {
					t.Fatalf("page %d: got ID %s after %s, want ascending IDs", page, e.ID, prev)
				}
				prev = e.ID
				seen[e.ID]++
			}
			if len(got) < f.Limit {
				break
			}
			f.After = got[len(got)-1].ID
			var add []*gatehouse.Enrollment
			for range 3 {
				if next < 120 {
					add = append(add, newEnrollment("acme", fmt.Sprintf("e%03d-%d", next, fi), gatehouse.EnrollmentGroup, attestationTypes[0]))
					next += 2
				}
			}
			createEnrollments(t, s, add...)
			if page > 100 {
				t.Fatalf("pagination does not terminate")
			}
		}
		for _, e := range initial {
			if want := enrollmentMatches(gatehouse.EnrollmentFilter{Scope: "acme", Type: f.Type, Attestation: f.Attestation}, e); want != (seen[e.ID] == 1) || seen[e.ID] > 1 {
				t.Errorf("filter %+v: enrollment %s returned %d times, want matches=%v once", f, e.ID, seen[e.ID], want)
			}
		}
	}
}
