package adminclient

import (
	"context"
	"iter"
	"net/url"
	"strconv"
)

// listing is the JSON of a listing: its items and, when it is paged and
// more pages follow, the next page's cursor.
type listing[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"nextCursor"`
}

// getList performs r, the GET of a listing, and returns its items and the
// cursor of the next page. A missing list comes back empty rather than nil,
// so that callers (and the JSON they print) see [] rather than null.
func getList[T any](ctx context.Context, c *Client, r request) ([]T, string, error) {
	var l listing[T]
	if err := c.do(ctx, r, &l); err != nil {
		return nil, "", err
	}
	if l.Items == nil {
		l.Items = []T{}
	}
	return l.Items, l.NextCursor, nil
}

// addPaging adds the page size (0: the server's default) and the cursor of
// the page (empty: the first) to a paged listing's query.
func addPaging(q url.Values, limit int, cursor string) {
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
}

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
