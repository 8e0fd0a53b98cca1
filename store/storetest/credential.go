package storetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

var (
	credentialKinds    = []gatehouse.CredentialKind{gatehouse.CredentialX509, gatehouse.CredentialSymmetricKey, gatehouse.CredentialToken}
	credentialStatuses = []gatehouse.CredentialStatus{gatehouse.CredentialActive, gatehouse.CredentialSuperseded, gatehouse.CredentialRevoked, gatehouse.CredentialExpired}
)

func timePtr(t time.Time) *time.Time { return &t }

// cloneCredential returns a deep copy of c, so that a test's expectation
// cannot alias what it handed the store.
func cloneCredential(c *gatehouse.Credential) *gatehouse.Credential {
	d := *c
	for _, p := range []**time.Time{&d.NotBefore, &d.NotAfter, &d.RetireAt, &d.RevokedAt, &d.ExpiryNotifiedAt} {
		if *p != nil {
			*p = timePtr(**p)
		}
	}
	d.CertDER = bytes.Clone(c.CertDER)
	d.Secret = bytes.Clone(c.Secret)
	return &d
}

// newCredential returns an active X.509 credential as the CA would record it.
func newCredential(scope, id, deviceID string) *gatehouse.Credential {
	t := now()
	return &gatehouse.Credential{
		ID: id, Scope: scope, DeviceID: deviceID,
		Kind: gatehouse.CredentialX509, Status: gatehouse.CredentialActive,
		Serial: id, Thumbprint: fmt.Sprintf("%064x", len(id)),
		NotBefore: timePtr(t), NotAfter: timePtr(t.Add(90 * 24 * time.Hour)),
		CreatedAt: t, CertDER: der(byte(len(id)), 300),
	}
}

func createCredentials(tb testing.TB, s gatehouse.Store, cs ...*gatehouse.Credential) {
	tb.Helper()
	update(tb, s, func(tx gatehouse.Tx) error {
		for _, c := range cs {
			if err := tx.CreateCredential(c); err != nil {
				return fmt.Errorf("create credential %s/%s: %w", c.Scope, c.ID, err)
			}
		}
		return nil
	})
}

func getCredential(tb testing.TB, s gatehouse.Store, scope, id string) *gatehouse.Credential {
	tb.Helper()
	c, err := s.GetCredential(context.Background(), scope, id)
	if err != nil {
		tb.Fatalf("GetCredential(%s, %s): %v", scope, id, err)
	}
	checkUTC(tb, "credential "+id, c.NotBefore, c.NotAfter, &c.CreatedAt, c.RetireAt, c.RevokedAt, c.ExpiryNotifiedAt)
	return c
}

func credentialIDs(cs []*gatehouse.Credential) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func testCredentials(t *testing.T, newStore NewStore) {
	ctx := context.Background()

	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		t0 := now()
		zone := time.FixedZone("UTC+5", 5*3600) // read back in UTC, the same instant
		full := &gatehouse.Credential{
			ID: "4f0c2a9e1b7d3c55aa01", Scope: "acme", DeviceID: "sensor-01",
			Kind: gatehouse.CredentialX509, Status: gatehouse.CredentialRevoked,
			Serial: "4f0c2a9e1b7d3c55aa01", Thumbprint: fmt.Sprintf("%064x", 12345), Slot: "",
			NotBefore: timePtr(t0.Add(-time.Hour).In(zone)), NotAfter: timePtr(t0.Add(90 * 24 * time.Hour)),
			CreatedAt: t0.Add(-time.Hour), RetireAt: timePtr(t0.Add(24 * time.Hour)),
			RevokedAt: timePtr(t0), RevocationReason: "keyCompromise",
			ExpiryNotifiedAt: timePtr(t0.Add(time.Minute)),
			CertDER:          der(0, 1100), Secret: []byte{0, 1, 0xfe, 0xff, 0},
		}
		// A symmetric key: no certificate, no validity, no pointers set.
		minimal := &gatehouse.Credential{
			ID: "key-primary-1", Scope: "acme", DeviceID: "sensor-01",
			Kind: gatehouse.CredentialSymmetricKey, Status: gatehouse.CredentialActive, Slot: "primary",
			CreatedAt: t0, Secret: der(7, 48),
		}
		bare := &gatehouse.Credential{ID: "bare", Scope: "acme", DeviceID: "d", Kind: gatehouse.CredentialToken, Status: gatehouse.CredentialActive, CreatedAt: t0}
		for _, c := range []*gatehouse.Credential{full, minimal, bare} {
			want := cloneCredential(c)
			update(t, s, func(tx gatehouse.Tx) error {
				if err := tx.CreateCredential(c); err != nil {
					return err
				}
				// A Tx sees its own writes, and GetCredential locks them.
				got, err := tx.GetCredential(c.Scope, c.ID)
				if err != nil {
					return err
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("tx.GetCredential(%s) in the creating tx (-want +got):\n%s", c.ID, diff)
				}
				return nil
			})
			if diff := cmp.Diff(want, getCredential(t, s, c.Scope, c.ID)); diff != "" {
				t.Errorf("GetCredential(%s) (-want +got):\n%s", c.ID, diff)
			}
		}

		// Empty byte values read back as nil.
		empty := newCredential("acme", "empty-bytes", "d")
		empty.CertDER, empty.Secret = []byte{}, []byte{}
		createCredentials(t, s, empty)
		if got := getCredential(t, s, "acme", "empty-bytes"); got.CertDER != nil || got.Secret != nil {
			t.Errorf("empty CertDER and Secret: got %#v and %#v, want nil", got.CertDER, got.Secret)
		}
	})

	t.Run("Duplicate", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		orig := newCredential("acme", "c1", "d1")
		createCredentials(t, s, orig)
		dup := newCredential("acme", "c1", "d2")
		dup.Status = gatehouse.CredentialRevoked
		err := s.Update(ctx, func(tx gatehouse.Tx) error { return tx.CreateCredential(dup) })
		wantCode(t, "CreateCredential duplicate", err, gatehouse.EConflict)
		if got := getCredential(t, s, "acme", "c1"); got.DeviceID != "d1" || got.Status != gatehouse.CredentialActive {
			t.Errorf("after duplicate: got device %q status %q, want d1 active", got.DeviceID, got.Status)
		}
		// The same ID in another scope is another credential.
		createCredentials(t, s, newCredential("beta", "c1", "d2"))
		if got := getCredential(t, s, "beta", "c1"); got.DeviceID != "d2" {
			t.Errorf("beta/c1: got device %q, want d2", got.DeviceID)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		createCredentials(t, s, newCredential("acme", "c1", "d1"))
		for _, tc := range []struct{ scope, id string }{{"acme", "c2"}, {"beta", "c1"}, {"nope", "c1"}} {
			_, err := s.GetCredential(ctx, tc.scope, tc.id)
			wantCode(t, "GetCredential "+tc.scope+"/"+tc.id, err, gatehouse.ENotFound)
			err = s.Update(ctx, func(tx gatehouse.Tx) error {
				_, err := tx.GetCredential(tc.scope, tc.id)
				return err
			})
			wantCode(t, "tx.GetCredential "+tc.scope+"/"+tc.id, err, gatehouse.ENotFound)
			err = s.Update(ctx, func(tx gatehouse.Tx) error { return tx.UpdateCredential(newCredential(tc.scope, tc.id, "d1")) })
			wantCode(t, "UpdateCredential "+tc.scope+"/"+tc.id, err, gatehouse.ENotFound)
		}
		if _, err := s.GetCredential(ctx, "beta", "c1"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("UpdateCredential of a missing credential created it: GetCredential got %v", err)
		}
	})

	t.Run("Update", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		orig := newCredential("acme", "c1", "d1")
		orig.Secret = []byte("sealed-1")
		createCredentials(t, s, orig, newCredential("acme", "c2", "d1"))

		// UpdateCredential writes the mutable fields; the others in its
		// argument are ignored.
		t0 := now()
		var want *gatehouse.Credential
		update(t, s, func(tx gatehouse.Tx) error {
			c, err := tx.GetCredential("acme", "c1")
			if err != nil {
				return err
			}
			want = cloneCredential(c)
			want.Status = gatehouse.CredentialRevoked
			want.RetireAt, want.RevokedAt, want.ExpiryNotifiedAt = timePtr(t0.Add(time.Hour)), timePtr(t0), timePtr(t0.Add(-time.Minute))
			want.RevocationReason = "superseded"
			want.Secret = []byte{0, 0xff}
			arg := cloneCredential(want)
			arg.DeviceID, arg.Kind, arg.Serial, arg.Thumbprint, arg.Slot = "other", gatehouse.CredentialToken, "x", "y", "z"
			arg.NotBefore, arg.NotAfter, arg.CreatedAt, arg.CertDER = nil, timePtr(t0), t0.Add(time.Hour), []byte("other")
			if err := tx.UpdateCredential(arg); err != nil {
				return err
			}
			got, err := tx.GetCredential("acme", "c1")
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("tx.GetCredential after UpdateCredential (-want +got):\n%s", diff)
			}
			return nil
		})
		if diff := cmp.Diff(want, getCredential(t, s, "acme", "c1")); diff != "" {
			t.Errorf("after UpdateCredential (-want +got):\n%s", diff)
		}

		// Back to nil pointers and no secret.
		cleared := cloneCredential(want)
		cleared.Status = gatehouse.CredentialActive
		cleared.RetireAt, cleared.RevokedAt, cleared.ExpiryNotifiedAt, cleared.RevocationReason, cleared.Secret = nil, nil, nil, "", nil
		update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateCredential(cleared) })
		if diff := cmp.Diff(cleared, getCredential(t, s, "acme", "c1")); diff != "" {
			t.Errorf("after clearing (-want +got):\n%s", diff)
		}
		// The other credential is untouched.
		if got := getCredential(t, s, "acme", "c2"); got.Status != gatehouse.CredentialActive || got.RevokedAt != nil {
			t.Errorf("c2 after updating c1: got status %q revokedAt %v", got.Status, got.RevokedAt)
		}
	})

	t.Run("DeviceCredentials", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		// Created out of ID order, with another device's and another
		// scope's credentials in between.
		var want []*gatehouse.Credential
		for _, id := range []string{"c5", "a1", "z9", "c10", "b0"} {
			c := newCredential("acme", id, "d1")
			want = append(want, cloneCredential(c))
			createCredentials(t, s, c, newCredential("acme", id+"-x", "d2"), newCredential("beta", id+"-y", "d1"))
		}
		slices.SortFunc(want, func(a, b *gatehouse.Credential) int { return strings.Compare(a.ID, b.ID) })
		update(t, s, func(tx gatehouse.Tx) error {
			got, err := tx.DeviceCredentials("acme", "d1")
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("DeviceCredentials(acme, d1) (-want +got):\n%s", diff)
			}
			none, err := tx.DeviceCredentials("acme", "nope")
			if err != nil || len(none) != 0 {
				t.Errorf("DeviceCredentials of a device without any: got %v (err %v), want none", credentialIDs(none), err)
			}
			// A Tx sees its own writes.
			if err := tx.CreateCredential(newCredential("acme", "b5", "d1")); err != nil {
				return err
			}
			got, err = tx.DeviceCredentials("acme", "d1")
			if err != nil {
				return err
			}
			if ids := credentialIDs(got); !slices.Equal(ids, []string{"a1", "b0", "b5", "c10", "c5", "z9"}) {
				t.Errorf("DeviceCredentials after CreateCredential in the tx: got %v", ids)
			}
			return nil
		})
	})

	// Credentials outlive their device: a revoked certificate stays on the
	// CRL until it expires.
	t.Run("SurviveDeviceDelete", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		createDevices(t, s, newDevice("acme", "d1", nil))
		c1, c2 := newCredential("acme", "c1", "d1"), newCredential("acme", "c2", "d1")
		c2.Status, c2.RevokedAt, c2.RevocationReason = gatehouse.CredentialRevoked, timePtr(now()), "cessationOfOperation"
		want := []*gatehouse.Credential{cloneCredential(c1), cloneCredential(c2)}
		createCredentials(t, s, c1, c2)
		update(t, s, func(tx gatehouse.Tx) error { return tx.DeleteDevice("acme", "d1") })
		for _, w := range want {
			if diff := cmp.Diff(w, getCredential(t, s, "acme", w.ID)); diff != "" {
				t.Errorf("GetCredential(%s) after DeleteDevice (-want +got):\n%s", w.ID, diff)
			}
		}
		got, err := s.ListCredentials(ctx, gatehouse.CredentialFilter{Scope: "acme", DeviceID: "d1", Limit: 10})
		if err != nil {
			t.Fatalf("ListCredentials: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListCredentials(device d1) after DeleteDevice (-want +got):\n%s", diff)
		}
		update(t, s, func(tx gatehouse.Tx) error {
			got, err := tx.DeviceCredentials("acme", "d1")
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("DeviceCredentials after DeleteDevice (-want +got):\n%s", diff)
			}
			return nil
		})
		// A credential may also name a device that never existed.
		createCredentials(t, s, newCredential("acme", "c3", "never"))
	})

	t.Run("Filters", func(t *testing.T) { testCredentialFilters(t, newStore(t)) })
	t.Run("Pagination", func(t *testing.T) { testCredentialPagination(t, newStore(t)) })
}

// credentialBase is the "now" of the credential dataset.
var credentialBase = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// notAfters spreads validity ends around credentialBase; nil is a
// credential without one (a symmetric key).
var notAfters = []*time.Time{
	nil,
	timePtr(credentialBase.Add(-48 * time.Hour)),
	timePtr(credentialBase.Add(time.Hour)),
	timePtr(credentialBase.Add(10 * 24 * time.Hour)),
	timePtr(credentialBase.Add(100 * 24 * time.Hour)),
}

// credentialDataset returns one credential for every device x kind x
// status x notAfter, with random serial-like IDs (so that ID order is not
// creation order), the same for every run of one seed.
func credentialDataset(scope string, seed uint64) []*gatehouse.Credential {
	r := rand.New(rand.NewPCG(seed, 11))
	var out []*gatehouse.Credential
	for d := range 6 {
		for _, kind := range credentialKinds {
			for _, status := range credentialStatuses {
				for _, na := range notAfters {
					c := newCredential(scope, fmt.Sprintf("%016x", r.Uint64()), fmt.Sprintf("dev-%d", d))
					c.Kind, c.Status = kind, status
					c.NotAfter = nil
					if na != nil {
						c.NotAfter = timePtr(*na)
					}
					if status == gatehouse.CredentialRevoked {
						c.RevokedAt, c.RevocationReason = timePtr(credentialBase), "keyCompromise"
					}
					out = append(out, c)
				}
			}
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// credentialMatches is the reference semantics of a CredentialFilter.
func credentialMatches(f gatehouse.CredentialFilter, c *gatehouse.Credential) bool {
	switch {
	case c.Scope != f.Scope:
		return false
	case f.DeviceID != "" && c.DeviceID != f.DeviceID:
		return false
	case len(f.Kinds) > 0 && !slices.Contains(f.Kinds, c.Kind):
		return false
	case len(f.Statuses) > 0 && !slices.Contains(f.Statuses, c.Status):
		return false
	case f.ExpiringBefore != nil && (c.NotAfter == nil || !c.NotAfter.Before(*f.ExpiringBefore)):
		return false
	}
	return true
}

// listAllCredentials pages through ListCredentials with page size limit.
func listAllCredentials(t *testing.T, s gatehouse.Store, f gatehouse.CredentialFilter, limit int) []*gatehouse.Credential {
	t.Helper()
	var out []*gatehouse.Credential
	f.Limit = limit
	for pages := 0; ; pages++ {
		page, err := s.ListCredentials(context.Background(), f)
		if err != nil {
			t.Fatalf("ListCredentials(%+v): %v", f, err)
		}
		if len(page) > limit {
			t.Fatalf("ListCredentials returned %d credentials, want at most %d", len(page), limit)
		}
		out = append(out, page...)
		if len(page) < limit {
			return out
		}
		if pages > 1000 {
			t.Fatalf("ListCredentials pagination does not terminate")
		}
		f.After = page[len(page)-1].ID
	}
}

func testCredentialFilters(t *testing.T, s gatehouse.Store) {
	const scope = "acme"
	createScopes(t, s, scope, "other")
	all := credentialDataset(scope, 1)
	// The other scope holds the same IDs with other attributes: a filter
	// that leaks across scopes returns wrong credentials.
	others := credentialDataset("other", 2)
	for i, c := range others {
		c.ID = all[i].ID
	}
	for i := 0; i < len(all); i += 120 {
		createCredentials(t, s, all[i:min(i+120, len(all))]...)
		createCredentials(t, s, others[i:min(i+120, len(others))]...)
	}
	want := func(f gatehouse.CredentialFilter) []*gatehouse.Credential {
		var out []*gatehouse.Credential
		for _, c := range all {
			if credentialMatches(f, c) {
				out = append(out, c)
			}
		}
		slices.SortFunc(out, func(a, b *gatehouse.Credential) int { return strings.Compare(a.ID, b.ID) })
		return out
	}
	x509 := []gatehouse.CredentialKind{gatehouse.CredentialX509}
	revoked := []gatehouse.CredentialStatus{gatehouse.CredentialRevoked}
	active := []gatehouse.CredentialStatus{gatehouse.CredentialActive}
	soon := timePtr(credentialBase.Add(14 * 24 * time.Hour))
	tests := []struct {
		name string
		f    gatehouse.CredentialFilter
	}{
		{"all", gatehouse.CredentialFilter{}},
		{"device", gatehouse.CredentialFilter{DeviceID: "dev-3"}},
		{"device-unknown", gatehouse.CredentialFilter{DeviceID: "nope"}},
		{"kind", gatehouse.CredentialFilter{Kinds: x509}},
		{"kinds", gatehouse.CredentialFilter{Kinds: []gatehouse.CredentialKind{gatehouse.CredentialSymmetricKey, gatehouse.CredentialToken}}},
		{"status", gatehouse.CredentialFilter{Statuses: active}},
		{"statuses", gatehouse.CredentialFilter{Statuses: []gatehouse.CredentialStatus{gatehouse.CredentialSuperseded, gatehouse.CredentialExpired}}},
		{"status-kind", gatehouse.CredentialFilter{Statuses: revoked, Kinds: x509}},
		{"expiring", gatehouse.CredentialFilter{ExpiringBefore: soon}},
		// NotAfter equal to the bound does not count: "before" is strict.
		{"expiring-boundary", gatehouse.CredentialFilter{ExpiringBefore: timePtr(credentialBase.Add(time.Hour))}},
		{"expiring-none", gatehouse.CredentialFilter{ExpiringBefore: timePtr(credentialBase.Add(-365 * 24 * time.Hour))}},
		{"expiring-all", gatehouse.CredentialFilter{ExpiringBefore: timePtr(credentialBase.Add(10 * 365 * 24 * time.Hour))}},
		{"expiring-active", gatehouse.CredentialFilter{ExpiringBefore: soon, Statuses: active}},
		{"expiring-status-kind", gatehouse.CredentialFilter{ExpiringBefore: soon, Statuses: active, Kinds: x509}},
		{"device-expiring", gatehouse.CredentialFilter{DeviceID: "dev-0", ExpiringBefore: soon}},
		{"device-status-kind", gatehouse.CredentialFilter{DeviceID: "dev-5", Statuses: revoked, Kinds: x509}},
		{"everything", gatehouse.CredentialFilter{DeviceID: "dev-2", ExpiringBefore: soon,
			Statuses: []gatehouse.CredentialStatus{gatehouse.CredentialActive, gatehouse.CredentialRevoked},
			Kinds:    []gatehouse.CredentialKind{gatehouse.CredentialX509, gatehouse.CredentialToken}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.Scope = scope
			w := want(f)
			if tc.name != "device-unknown" && tc.name != "expiring-none" && len(w) == 0 {
				t.Fatalf("the reference matches nothing: the test data is wrong")
			}
			for _, limit := range []int{1000, 7} {
				got := listAllCredentials(t, s, f, limit)
				// Whole records, not just IDs.
				if diff := cmp.Diff(w, got); diff != "" {
					t.Errorf("limit %d: got %d credentials, want %d (-want +got):\n%s", limit, len(got), len(w), diff)
				}
			}
		})
	}

	t.Run("UnknownScope", func(t *testing.T) {
		got, err := s.ListCredentials(context.Background(), gatehouse.CredentialFilter{Scope: "nope", Limit: 10})
		if err != nil && gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Fatalf("ListCredentials(unknown scope): got %v, want nil or not_found", err)
		}
		if len(got) != 0 {
			t.Errorf("ListCredentials(unknown scope): got %d credentials, want 0", len(got))
		}
	})
}

// testCredentialPagination pages through a scope's credentials while others
// are created before and after the cursor: every credential that existed
// throughout comes exactly once, in ascending ID order.
func testCredentialPagination(t *testing.T, s gatehouse.Store) {
	ctx := context.Background()
	createScopes(t, s, "acme")
	var initial []*gatehouse.Credential
	for i := 0; i < 200; i += 2 {
		initial = append(initial, newCredential("acme", fmt.Sprintf("c%03d", i), fmt.Sprintf("d%d", i%3)))
	}
	createCredentials(t, s, initial...)
	fi := 0
	for _, f := range []gatehouse.CredentialFilter{
		{Scope: "acme"},
		{Scope: "acme", Statuses: []gatehouse.CredentialStatus{gatehouse.CredentialActive}, Kinds: []gatehouse.CredentialKind{gatehouse.CredentialX509}},
		{Scope: "acme", ExpiringBefore: timePtr(now().Add(365 * 24 * time.Hour))},
	} {
		fi++
		f.Limit = 10
		seen := map[string]int{}
		prev := ""
		next := 1 // the next odd ID to create
		for page := 0; ; page++ {
			got, err := s.ListCredentials(ctx, f)
			if err != nil {
				t.Fatalf("ListCredentials: %v", err)
			}
			for _, c := range got {
				if c.ID <= prev {
					t.Fatalf("page %d: got ID %s after %s, want ascending IDs", page, c.ID, prev)
				}
				prev = c.ID
				seen[c.ID]++
			}
			if len(got) < f.Limit {
				break
			}
			f.After = got[len(got)-1].ID
			var add []*gatehouse.Credential
			for range 3 {
				if next < 200 {
					add = append(add, newCredential("acme", fmt.Sprintf("c%03d-%d", next, fi), "dx"))
					next += 2
				}
			}
			createCredentials(t, s, add...)
			if page > 100 {
				t.Fatalf("pagination does not terminate")
			}
		}
		for _, c := range initial {
			if seen[c.ID] != 1 {
				t.Errorf("filter %+v: credential %s returned %d times, want once", f, c.ID, seen[c.ID])
			}
		}
	}
}
