package adminclient

import "iter"

// pages iterates over every item of a paged listing: fetch returns one page
// (its items and next cursor) for a cursor, starting from cursor. It yields
// an error (and stops) if a page cannot be fetched, and stops if the server
// returns the same cursor again.
func pages[T any](cursor string, fetch func(cursor string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			items, next, err := fetch(cursor)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" || next == cursor {
				return
			}
			cursor = next
		}
	}
}
