package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

// der returns n bytes that no text encoding survives intact: every byte
// value, NUL and 0xff included, starting at seed.
func der(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func testScopeCAs(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	createScopes(t, s, "acme", "beta")

	_, err := s.GetScopeCA(ctx, "acme")
	wantCode(t, "GetScopeCA before any", err, gatehouse.ENotFound)

	getCA := func(scope string) *gatehouse.ScopeCA {
		t.Helper()
		got, err := s.GetScopeCA(ctx, scope)
		if err != nil {
			t.Fatalf("GetScopeCA(%s): %v", scope, err)
		}
		checkUTC(t, "ScopeCA.CreatedAt", &got.CreatedAt)
		return got
	}
	put := func(ca *gatehouse.ScopeCA) {
		t.Helper()
		update(t, s, func(tx gatehouse.Tx) error { return tx.PutScopeCA(ca) })
	}

	// Chain elements of 127 and 128 bytes straddle a one-byte length
	// prefix, should a backend use one; 5000 bytes spans pages.
	first := &gatehouse.ScopeCA{
		Scope:     "acme",
		CertDER:   der(1, 700),
		ChainDER:  [][]byte{der(2, 127), der(3, 128), der(0, 5000)},
		SealedKey: der(4, 90),
		Imported:  true,
		CreatedAt: now().Add(-time.Hour).In(time.FixedZone("X", 5*3600)), // read back in UTC
	}
	beta := &gatehouse.ScopeCA{Scope: "beta", CertDER: der(9, 10), ChainDER: [][]byte{der(8, 3)}, SealedKey: der(7, 5), CreatedAt: now()}
	put(first)
	put(beta)
	if diff := cmp.Diff(first, getCA("acme")); diff != "" {
		t.Errorf("GetScopeCA (-want +got):\n%s", diff)
	}

	// PutScopeCA replaces the whole CA, chain included, and leaves other
	// scopes alone.
	second := &gatehouse.ScopeCA{Scope: "acme", CertDER: der(5, 600), ChainDER: [][]byte{der(6, 400)}, SealedKey: der(7, 80), CreatedAt: now()}
	put(second)
	if diff := cmp.Diff(second, getCA("acme")); diff != "" {
		t.Errorf("GetScopeCA after replacing (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(beta, getCA("beta")); diff != "" {
		t.Errorf("GetScopeCA of another scope after replacing (-want +got):\n%s", diff)
	}

	// A self-signed root has no chain: nil and empty both read back nil.
	for _, chain := range [][][]byte{nil, {}} {
		root := &gatehouse.ScopeCA{Scope: "acme", CertDER: der(1, 50), ChainDER: chain, SealedKey: der(2, 50), CreatedAt: now()}
		put(root)
		got := getCA("acme")
		if got.ChainDER != nil {
			t.Errorf("ChainDER stored as %#v: got %#v, want nil", chain, got.ChainDER)
		}
		if !bytes.Equal(got.CertDER, root.CertDER) {
			t.Errorf("CertDER: got %x, want %x", got.CertDER, root.CertDER)
		}
	}
}
