package adminclient

import (
	"context"
	"io"
	"net/http"
	"strings"
)

// ExportOptions selects and formats a device export.
type ExportOptions struct {
	Format  string   // ndjson (the default) or csv
	TagKeys []string // csv: the tag columns (default: every key among the devices)
	Filter  ListOptions
}

// ExportDevices streams the devices opts select into w, as the server
// writes them, and returns the bytes written. An export the server breaks
// off part way is an error, never a short file taken for whole.
func (c *Client) ExportDevices(ctx context.Context, scope string, opts ExportOptions, w io.Writer) (int64, error) {
	f := opts.Filter
	f.Limit, f.Cursor = 0, ""
	q := f.query()
	if opts.Format != "" {
		q.Set("format", opts.Format)
	}
	if len(opts.TagKeys) > 0 {
		q.Set("tagKeys", strings.Join(opts.TagKeys, ","))
	}
	req, err := c.newRequest(ctx, request{method: http.MethodGet, path: "/v1/scopes/" + seg(scope) + "/exports/devices", query: q})
	if err != nil {
		return 0, err
	}
	resp, err := c.send(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return n, ctxErr
		}
		return n, &TransportError{URL: c.base.String(), Err: err}
	}
	return n, nil
}
