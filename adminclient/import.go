package adminclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/gatehouse-iot/gatehouse/registry"
)

// ImportOptions says how the server reads an import file.
type ImportOptions struct {
	Mode   registry.ImportMode   // create (the default), upsert, update or delete
	Format registry.ImportFormat // csv or ndjson
	// Kind is what the file holds: "devices" (the default) or
	// "enrollments" (individual enrollments; see ImportEnrollments).
	Kind string
}

// ImportEnrollments is ImportDevices for a file of individual enrollments.
// Symmetric keys and bootstrap tokens must be in the file: the server
// never generates a secret it would have to show in the results.
func (c *Client) ImportEnrollments(ctx context.Context, scope string, body io.Reader, opts ImportOptions, fn func(res *registry.ImportResult, line []byte) error) (*registry.ImportSummary, error) {
	opts.Kind = "enrollments"
	return c.ImportDevices(ctx, scope, body, opts, fn)
}

// ImportDevices streams body (a CSV or NDJSON file) to the server, which
// applies it in batches while it arrives, and calls fn with every record's
// result as it comes back, in file order: decoded, and as the raw NDJSON
// line (valid until fn returns), for a result file. It returns the
// server's summary; Complete is false if the import stopped early.
//
// The upload and the results stream at once, so neither side holds the
// file: memory stays flat whatever its size.
func (c *Client) ImportDevices(ctx context.Context, scope string, body io.Reader, opts ImportOptions, fn func(res *registry.ImportResult, line []byte) error) (*registry.ImportSummary, error) {
	q := url.Values{}
	if opts.Mode != "" {
		q.Set("mode", string(opts.Mode))
	}
	if opts.Kind != "" && opts.Kind != "devices" {
		q.Set("kind", opts.Kind)
	}
	ct := "text/csv"
	switch opts.Format {
	case registry.ImportCSV:
	case registry.ImportNDJSON:
		ct = "application/x-ndjson"
	default:
		return nil, fmt.Errorf("unknown import format %q; use csv or ndjson", opts.Format)
	}
	req, err := c.newRequest(ctx, request{method: http.MethodPost, path: "/v1/scopes/" + seg(scope) + "/imports", query: q})
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(body)
	req.ContentLength = -1
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	summaryPrefix := []byte(`{"summary":`)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, summaryPrefix) {
			var s struct {
				Summary *registry.ImportSummary `json:"summary"`
			}
			if err := json.Unmarshal(line, &s); err != nil || s.Summary == nil {
				return nil, fmt.Errorf("decode import summary: %v", err)
			}
			if fn != nil {
				if err := fn(nil, line); err != nil {
					return s.Summary, err
				}
			}
			return s.Summary, nil
		}
		var r registry.ImportResult
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("decode import result: %w", err)
		}
		if fn != nil {
			if err := fn(&r, line); err != nil {
				return nil, err
			}
		}
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, ctxErr
	}
	err = sc.Err()
	if err == nil {
		err = errors.New("the server ended the answer without a summary")
	}
	return nil, &TransportError{URL: c.base.String(), Err: fmt.Errorf("import results: %w", err)}
}
