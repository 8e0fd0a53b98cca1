package storetest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

const time1h = time.Hour

func testTokens(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	mkToken := func(id, scope string, role gatehouse.Role) *gatehouse.Token {
		secret, _ := gatehouse.NewTokenSecret()
		return &gatehouse.Token{
			ID:        id,
			Scope:     scope,
			Name:      "token " + id + " (ci/cd) é",
			Role:      role,
			Hash:      gatehouse.HashToken(secret),
			CreatedAt: now(),
			CreatedBy: "token:bootstrap",
		}
	}

	t.Run("CreateGetList", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		want := []*gatehouse.Token{
			mkToken("aaaaaaaaaaaaaaaa", "acme", gatehouse.RoleAdmin),
			mkToken("bbbbbbbbbbbbbbbb", "acme", gatehouse.RoleViewer),
			mkToken("cccccccccccccccc", "beta", gatehouse.RoleOperator),
			mkToken("dddddddddddddddd", gatehouse.GlobalScope, gatehouse.RoleAdmin),
		}
		update(t, s, func(tx gatehouse.Tx) error {
			for _, tok := range want {
				if err := tx.CreateToken(tok); err != nil {
					return err
				}
			}
			return nil
		})
		for _, w := range want {
			got, err := s.GetToken(ctx, w.ID)
			if err != nil {
				t.Fatalf("GetToken(%s): %v", w.ID, err)
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("GetToken(%s) (-want +got):\n%s", w.ID, diff)
			}
			if !got.Matches(w.Hash) {
				t.Errorf("GetToken(%s).Matches(original hash): got false, want true", w.ID)
			}
			checkUTC(t, "GetToken.CreatedAt", &got.CreatedAt, got.RevokedAt)
		}
		for _, tc := range []struct {
			scope string
			want  []*gatehouse.Token
		}{
			{"acme", want[:2]},
			{"beta", want[2:3]},
			{gatehouse.GlobalScope, want[3:]},
			{"empty", nil},
		} {
			got, err := s.ListTokens(ctx, tc.scope)
			if err != nil {
				t.Fatalf("ListTokens(%s): %v", tc.scope, err)
			}
			slices.SortFunc(got, func(a, b *gatehouse.Token) int { return strings.Compare(a.ID, b.ID) })
			if diff := cmp.Diff(tc.want, got, diffOpts...); diff != "" {
				t.Errorf("ListTokens(%s) (-want +got):\n%s", tc.scope, diff)
			}
		}
	})

	t.Run("Duplicate", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		update(t, s, func(tx gatehouse.Tx) error {
			return tx.CreateToken(mkToken("aaaaaaaaaaaaaaaa", "acme", gatehouse.RoleAdmin))
		})
		err := s.Update(ctx, func(tx gatehouse.Tx) error {
			// Same ID in another scope: token IDs are global.
			return tx.CreateToken(mkToken("aaaaaaaaaaaaaaaa", "beta", gatehouse.RoleAdmin))
		})
		wantCode(t, "CreateToken duplicate id", err, gatehouse.EConflict)
	})

	t.Run("Missing", func(t *testing.T) {
		s := newStore(t)
		_, err := s.GetToken(ctx, "zzzzzzzzzzzzzzzz")
		wantCode(t, "GetToken missing", err, gatehouse.ENotFound)
		err = s.Update(ctx, func(tx gatehouse.Tx) error { return tx.RevokeToken("zzzzzzzzzzzzzzzz", now()) })
		wantCode(t, "RevokeToken missing", err, gatehouse.ENotFound)
	})

	t.Run("Revoke", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		tok := mkToken("aaaaaaaaaaaaaaaa", "acme", gatehouse.RoleOperator)
		other := mkToken("bbbbbbbbbbbbbbbb", "acme", gatehouse.RoleOperator)
		update(t, s, func(tx gatehouse.Tx) error {
			if err := tx.CreateToken(tok); err != nil {
				return err
			}
			return tx.CreateToken(other)
		})
		at := now().Add(time.Minute)
		update(t, s, func(tx gatehouse.Tx) error { return tx.RevokeToken(tok.ID, at) })
		got, err := s.GetToken(ctx, tok.ID)
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		if got.RevokedAt == nil || !got.RevokedAt.Equal(at) {
			t.Errorf("RevokedAt: got %v, want %v", got.RevokedAt, at)
		}
		checkUTC(t, "RevokedAt", got.RevokedAt)
		want := *tok
		want.RevokedAt = &at
		if diff := cmp.Diff(&want, got); diff != "" {
			t.Errorf("revoked token (-want +got):\n%s", diff)
		}
		if got, err := s.GetToken(ctx, other.ID); err != nil {
			t.Errorf("GetToken(other): %v", err)
		} else if got.RevokedAt != nil {
			t.Errorf("other token RevokedAt: got %v, want nil", got.RevokedAt)
		}
	})
}
