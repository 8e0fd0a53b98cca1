package adminclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gatehouse-iot/gatehouse/registry"
)

func importJobsPath(scope string) string { return "/v1/scopes/" + seg(scope) + "/import-jobs" }

// CreateImportJob uploads body (a CSV or NDJSON file, as ImportDevices
// takes) as an import job and returns the job, queued, once the server has
// spooled the file. The import runs in the background: poll ImportJob, then
// read ImportJobResults.
func (c *Client) CreateImportJob(ctx context.Context, scope string, body io.Reader, opts ImportOptions) (*registry.ImportJobInfo, error) {
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
	req, err := c.newRequest(ctx, request{method: http.MethodPost, path: importJobsPath(scope), query: q})
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(body)
	req.ContentLength = -1
	req.Header.Set("Content-Type", ct)
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var j registry.ImportJobInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&j); err != nil {
		return nil, &TransportError{URL: c.base.String(), Err: fmt.Errorf("decode the import job: %w", err)}
	}
	return &j, nil
}

// ImportJob returns an import job's status (any node sharing the database
// answers).
func (c *Client) ImportJob(ctx context.Context, scope, id string) (*registry.ImportJobInfo, error) {
	var j registry.ImportJobInfo
	if err := c.do(ctx, request{method: http.MethodGet, path: importJobsPath(scope) + "/" + seg(id)}, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// ListImportJobs returns a page of a scope's import jobs, newest first.
func (c *Client) ListImportJobs(ctx context.Context, scope, cursor string, limit int) (*registry.ImportJobPage, error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var p registry.ImportJobPage
	if err := c.do(ctx, request{method: http.MethodGet, path: importJobsPath(scope), query: q}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// CancelImportJob asks a job to stop before its next batch and returns it
// (still running, with CancelRequested, until it stops).
func (c *Client) CancelImportJob(ctx context.Context, scope, id string) (*registry.ImportJobInfo, error) {
	var j registry.ImportJobInfo
	if err := c.do(ctx, request{method: http.MethodDelete, path: importJobsPath(scope) + "/" + seg(id)}, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// ImportJobResults copies a job's per-record results (NDJSON, as
// ImportDevices answers them) to w. full is false when the node that
// answered does not hold the job's result file and sent only the rejected
// records the database keeps (the first 10,000); node then names the node
// that holds the full file.
func (c *Client) ImportJobResults(ctx context.Context, scope, id string, w io.Writer) (full bool, node string, err error) {
	req, err := c.newRequest(ctx, request{method: http.MethodGet, path: importJobsPath(scope) + "/" + seg(id) + "/results"})
	if err != nil {
		return false, "", err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := c.send(req)
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return false, "", ctxErr
		}
		return false, "", &TransportError{URL: c.base.String(), Err: fmt.Errorf("import job results: %w", err)}
	}
	return resp.Header.Get("Gatehouse-Results") == "full", resp.Header.Get("Gatehouse-Results-Node"), nil
}
