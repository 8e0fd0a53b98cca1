package adminclient

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
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
	return c.export(ctx, "/v1/scopes/"+seg(scope)+"/exports/devices", q, w)
}

// EnrollmentExportOptions selects and formats an enrollment export.
type EnrollmentExportOptions struct {
	Format      string                    // ndjson (the default) or csv
	TagKeys     []string                  // csv: the initial-tag columns (default: every key)
	Type        gatehouse.EnrollmentType  // individual or group; "" for both
	Attestation gatehouse.AttestationType // symmetric_key, x509 or token; "" for all
}

// ExportEnrollments streams a scope's enrollments into w, without any
// secret, and returns the bytes written.
func (c *Client) ExportEnrollments(ctx context.Context, scope string, opts EnrollmentExportOptions, w io.Writer) (int64, error) {
	q := url.Values{}
	if opts.Format != "" {
		q.Set("format", opts.Format)
	}
	if len(opts.TagKeys) > 0 {
		q.Set("tagKeys", strings.Join(opts.TagKeys, ","))
	}
	if opts.Type != "" {
		q.Set("type", string(opts.Type))
	}
	if opts.Attestation != "" {
		q.Set("attestation", string(opts.Attestation))
	}
	return c.export(ctx, "/v1/scopes/"+seg(scope)+"/exports/enrollments", q, w)
}

func (c *Client) export(ctx context.Context, path string, q url.Values, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, request{method: http.MethodGet, path: path, query: q})
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
