package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/google/go-cmp/cmp"
)

// appendEvents appends n events to scope in one Update.
func appendEvents(tb testing.TB, s gatehouse.Store, scope string, n int) []*gatehouse.Event {
	tb.Helper()
	var evs []*gatehouse.Event
	update(tb, s, func(tx gatehouse.Tx) error {
		evs = evs[:0]
		for i := range n {
			e := &gatehouse.Event{Scope: scope, Type: gatehouse.EventDeviceUpdated, Time: now(), Actor: "system", Subject: gatehouse.DeviceSubject(fmt.Sprint(i))}
			if err := tx.AppendEvent(e); err != nil {
				return err
			}
			evs = append(evs, e)
		}
		return nil
	})
	return evs
}

func seqs(evs []*gatehouse.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func equalInts(a, b []int64) bool { return slices.Equal(a, b) }

func seqRange(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func testEvents(t *testing.T, newStore NewStore) {
	ctx := context.Background()

	t.Run("SeqPerScope", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme", "beta")
		var want []*gatehouse.Event
		for i := range 8 {
			scope := "acme"
			if i%3 == 2 {
				scope = "beta"
			}
			e := &gatehouse.Event{
				Scope:   scope,
				Type:    gatehouse.EventDeviceCreated,
				Time:    now(),
				Actor:   "token:aaaaaaaaaaaaaaaa",
				Subject: gatehouse.DeviceSubject(fmt.Sprintf("d%d", i)),
				Data:    json.RawMessage(fmt.Sprintf(`{"z":%d,"a":"\u00e9"}`, i)),
			}
			if i == 0 {
				e.Data = nil
			}
			update(t, s, func(tx gatehouse.Tx) error { return tx.AppendEvent(e) })
			want = append(want, e)
		}
		// Several in one Update get consecutive numbers too.
		want = append(want, appendEvents(t, s, "beta", 3)...)

		for _, tc := range []struct {
			scope string
			seqs  []int64
		}{{"acme", seqRange(1, 6)}, {"beta", seqRange(1, 5)}, {"empty", nil}} {
			var wantEvs []*gatehouse.Event
			for _, e := range want {
				if e.Scope == tc.scope {
					wantEvs = append(wantEvs, e)
				}
			}
			if got := seqs(wantEvs); !equalInts(got, tc.seqs) {
				t.Errorf("assigned seqs in %s: got %v, want %v", tc.scope, got, tc.seqs)
			}
			got, err := s.ListEvents(ctx, tc.scope, 0, 100)
			if err != nil {
				t.Fatalf("ListEvents(%s): %v", tc.scope, err)
			}
			if diff := cmp.Diff(wantEvs, got, diffOpts...); diff != "" {
				t.Errorf("ListEvents(%s) (-want +got):\n%s", tc.scope, diff)
			}
			for _, e := range got {
				checkUTC(t, "event time", &e.Time)
				for _, w := range wantEvs {
					if w.Seq == e.Seq && string(w.Data) != string(e.Data) {
						t.Errorf("event %d data: got %s, want %s", e.Seq, e.Data, w.Data)
					}
				}
			}
		}
	})

	t.Run("Paging", func(t *testing.T) {
		s := newStore(t)
		createScopes(t, s, "acme")
		appendEvents(t, s, "acme", 25)
		for _, tc := range []struct {
			after int64
			limit int
			want  []int64
		}{
			{0, 10, seqRange(1, 10)},
			{10, 10, seqRange(11, 20)},
			{20, 10, seqRange(21, 25)},
			{25, 10, nil},
			{100, 10, nil},
			{3, 1, []int64{4}},
			{0, 1000, seqRange(1, 25)},
		} {
			got, err := s.ListEvents(ctx, "acme", tc.after, tc.limit)
			if err != nil {
				t.Fatalf("ListEvents(after %d, limit %d): %v", tc.after, tc.limit, err)
			}
			if g := seqs(got); !equalInts(g, tc.want) {
				t.Errorf("ListEvents(after %d, limit %d): got %v, want %v", tc.after, tc.limit, g, tc.want)
			}
		}
	})

	t.Run("ConcurrentAppenders", func(t *testing.T) {
		s := newStore(t)
		scopes := []string{"s1", "s2", "s3"}
		createScopes(t, s, scopes...)
		const writers, perWriter = 12, 20
		var done atomic.Bool
		var wg, readers sync.WaitGroup
		// One reader per scope polls while the writers append and checks that
		// it never sees a gap.
		for _, scope := range scopes {
			readers.Go(func() {
				var last int64
				for {
					finished := done.Load()
					evs, err := s.ListEvents(ctx, scope, last, 1000)
					if err != nil {
						t.Errorf("ListEvents(%s): %v", scope, err)
						return
					}
					for _, e := range evs {
						if e.Seq != last+1 {
							t.Errorf("reader of %s: got seq %d after %d, want %d (a gap)", scope, e.Seq, last, last+1)
							return
						}
						last = e.Seq
					}
					if finished && len(evs) == 0 {
						if want := int64(writers * perWriter); last != want {
							t.Errorf("reader of %s: saw %d events, want %d", scope, last, want)
						}
						return
					}
					time.Sleep(100 * time.Microsecond)
				}
			})
		}
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					err := s.Update(ctx, func(tx gatehouse.Tx) error {
						for _, scope := range scopes {
							if err := tx.AppendEvent(&gatehouse.Event{Scope: scope, Type: "test", Time: now(), Subject: fmt.Sprintf("w%d/%d", w, i)}); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						t.Errorf("AppendEvent: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		done.Store(true)
		readers.Wait()
		for _, scope := range scopes {
			evs, err := s.ListEvents(ctx, scope, 0, 1000)
			if err != nil {
				t.Fatalf("ListEvents: %v", err)
			}
			if got, want := seqs(evs), seqRange(1, writers*perWriter); !equalInts(got, want) {
				t.Errorf("seqs of %s: got %d events %v, want 1..%d", scope, len(got), got, len(want))
			}
			subjects := map[string]bool{}
			for _, e := range evs {
				subjects[e.Subject] = true
			}
			if len(subjects) != writers*perWriter {
				t.Errorf("distinct events in %s: got %d, want %d", scope, len(subjects), writers*perWriter)
			}
		}
	})
}
