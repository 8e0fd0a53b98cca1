package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

func testSettings(t *testing.T, newStore NewStore) {
	ctx := context.Background()

	t.Run("FirstWriterWins", func(t *testing.T) {
		s := newStore(t)
		_, err := s.GetSetting(ctx, "ca.key")
		wantCode(t, "GetSetting missing", err, gatehouse.ENotFound)

		// Binary values round-trip.
		first := []byte{0, 1, 2, 0xff, 'a'}
		for i, v := range [][]byte{first, []byte("second")} {
			var got []byte
			update(t, s, func(tx gatehouse.Tx) error {
				var err error
				got, err = tx.PutSettingIfAbsent("ca.key", v)
				return err
			})
			if !bytes.Equal(got, first) {
				t.Errorf("PutSettingIfAbsent #%d: got %q, want %q", i+1, got, first)
			}
		}
		got, err := s.GetSetting(ctx, "ca.key")
		if err != nil || !bytes.Equal(got, first) {
			t.Errorf("GetSetting: got %q (err %v), want %q", got, err, first)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		const n = 16
		got := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				err := s.Update(ctx, func(tx gatehouse.Tx) error {
					v, err := tx.PutSettingIfAbsent("installation.id", fmt.Appendf(nil, "node-%d", i))
					got[i] = v
					return err
				})
				if err != nil {
					t.Errorf("PutSettingIfAbsent: %v", err)
				}
			})
		}
		wg.Wait()
		stored, err := s.GetSetting(ctx, "installation.id")
		if err != nil {
			t.Fatalf("GetSetting: %v", err)
		}
		for i, v := range got {
			if !bytes.Equal(v, stored) {
				t.Errorf("writer %d: got %q, want %q (the stored value)", i, v, stored)
			}
		}
	})
}
