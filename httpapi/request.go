package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// Media types a request body may have.
const (
	mediaJSON       = "application/json"
	mediaMergePatch = "application/merge-patch+json"
)

// readBody checks the request's Content-Type against the accepted media
// types and reads the body, up to the handler's cap.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, accept ...string) ([]byte, error) {
	if err := checkContentType(r.Header.Get("Content-Type"), accept); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, gatehouse.Errorf(gatehouse.EBodyTooLarge, "the request body exceeds %d bytes", h.maxBody)
		}
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "could not read the request body")
	}
	return body, nil
}

// decodeBody reads a JSON body into v, refusing unknown fields.
func (h *Handler) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := h.readBody(w, r, mediaJSON)
	if err != nil {
		return err
	}
	return gatehouse.DecodeStrict(body, v)
}

// checkContentType accepts a media type among accept, with no parameter
// other than charset=utf-8.
func checkContentType(ct string, accept []string) error {
	want := strings.Join(accept, " or ")
	if ct == "" {
		return gatehouse.Errorf(gatehouse.EUnsupportedMedia, "the request has no Content-Type; send %s", want)
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return gatehouse.Errorf(gatehouse.EUnsupportedMedia, "the Content-Type header is malformed; send %s", want)
	}
	ok := false
	for _, a := range accept {
		ok = ok || mt == a
	}
	if !ok {
		return gatehouse.Errorf(gatehouse.EUnsupportedMedia, "Content-Type %q is not accepted here; send %s", truncate(mt, 64), want)
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return gatehouse.Errorf(gatehouse.EUnsupportedMedia, "Content-Type parameter %q is not accepted; JSON is UTF-8", truncate(k, 64))
		}
	}
	return nil
}

// writeJSON encodes v and writes it with status. Encoding happens first, so
// a failure is still a clean error response.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", mediaJSON)
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
	return nil
}

// list is the envelope of every collection response.
type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"nextCursor,omitempty"`
}

func newList[T any](items []T) list[T] {
	if items == nil {
		items = []T{}
	}
	return list[T]{Items: items}
}

// parseQuery parses a raw query string, refusing parameters not in known
// so that a misspelt filter fails instead of silently matching everything.
func parseQuery(raw string, known ...string) (url.Values, error) {
	if len(raw) > 16<<10 {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "the query string is longer than 16 KiB")
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "the query string is malformed; percent-encode reserved characters")
	}
	for k := range q {
		found := false
		for _, n := range known {
			found = found || k == n
		}
		if !found {
			return nil, gatehouse.Errorf(gatehouse.EInvalid, "unknown query parameter %q; this endpoint takes %s", truncate(k, 64), strings.Join(known, ", "))
		}
	}
	return q, nil
}

// single returns the one value of a parameter, refusing repeats.
func single(q url.Values, name string) (string, error) {
	vs := q[name]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", gatehouse.Errorf(gatehouse.EInvalid, "query parameter %q may appear once", name)
}

// parseLimit parses a page size; absent means the registry's default.
func parseLimit(q url.Values, max int) (int, error) {
	s, err := single(q, "limit")
	if err != nil || s == "" {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, gatehouse.Errorf(gatehouse.EInvalid, "limit must be an integer between 1 and %d", max)
	}
	return n, nil
}

// parseTime parses an RFC 3339 time; absent means the zero time.
func parseTime(q url.Values, name string) (time.Time, error) {
	s, err := single(q, name)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, gatehouse.Errorf(gatehouse.EInvalid, "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
	}
	return t, nil
}

// parseDeviceQuery turns a device listing's query string into a
// registry.DeviceQuery. States may repeat or be comma-separated; each tag
// parameter is one selector.
func parseDeviceQuery(raw string) (registry.DeviceQuery, error) {
	var dq registry.DeviceQuery
	q, err := parseQuery(raw, "state", "connection", "tag", "limit", "cursor", "lastSeenBefore", "lastSeenAfter", "enrollment")
	if err != nil {
		return dq, err
	}
	for _, v := range q["state"] {
		for s := range strings.SplitSeq(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			st := gatehouse.State(s)
			if !st.Valid() {
				return dq, gatehouse.Errorf(gatehouse.EInvalid, "unknown state %q in filter; states are provisioned, active, inactive, quarantined, decommissioned", truncate(s, 64))
			}
			dq.States = append(dq.States, st)
		}
	}
	if len(dq.States) > len(gatehouse.States) {
		return dq, gatehouse.Errorf(gatehouse.EInvalid, "the state filter names more states than there are")
	}
	conn, err := single(q, "connection")
	if err != nil {
		return dq, err
	}
	switch c := gatehouse.ConnectionStatus(conn); c {
	case "", gatehouse.Online, gatehouse.Offline:
		dq.Connection = c
	default:
		return dq, gatehouse.Errorf(gatehouse.EInvalid, "connection must be online or offline")
	}
	if len(q["tag"]) > gatehouse.MaxSelectors {
		return dq, gatehouse.Errorf(gatehouse.EInvalidSelector, "at most %d tag selectors per query", gatehouse.MaxSelectors)
	}
	for _, s := range q["tag"] {
		sel, err := gatehouse.ParseTagSelector(s)
		if err != nil {
			return dq, err
		}
		dq.Selectors = append(dq.Selectors, sel)
	}
	if dq.LastSeenBefore, err = parseTime(q, "lastSeenBefore"); err != nil {
		return dq, err
	}
	if dq.LastSeenAfter, err = parseTime(q, "lastSeenAfter"); err != nil {
		return dq, err
	}
	if dq.Enrollment, err = single(q, "enrollment"); err != nil {
		return dq, err
	}
	if dq.Limit, err = parseLimit(q, registry.MaxPageSize); err != nil {
		return dq, err
	}
	if dq.Cursor, err = single(q, "cursor"); err != nil {
		return dq, err
	}
	if _, err := gatehouse.DecodeCursor(dq.Cursor); err != nil {
		return dq, err
	}
	return dq, nil
}

// ifMatch returns the request's If-Match values as one list.
func ifMatch(r *http.Request) string {
	return strings.Join(r.Header.Values("If-Match"), ",")
}

// quoteETag formats an etag for the ETag header.
func quoteETag(etag string) string { return `"` + etag + `"` }

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
