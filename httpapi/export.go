package httpapi

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// exportDevices streams the devices a listing's filters select, as NDJSON
// (whole device objects) or CSV (the columns an import reads: id, state,
// etag, config, tags.<key>), so that an export can be imported again.
func (h *Handler) exportDevices(w http.ResponseWriter, r *http.Request) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return gatehouse.Errorf(gatehouse.EInvalid, "the query string is malformed; percent-encode reserved characters")
	}
	format, err := single(q, "format")
	if err != nil {
		return err
	}
	tagKeys, err := single(q, "tagKeys")
	if err != nil {
		return err
	}
	q.Del("format")
	q.Del("tagKeys")
	dq, err := parseDeviceQuery(q.Encode())
	if err != nil {
		return err
	}
	if dq.Limit != 0 || dq.Cursor != "" {
		return gatehouse.Errorf(gatehouse.EInvalid, "an export has no pages: it takes no limit or cursor")
	}
	switch format {
	case "", "ndjson", "csv":
	default:
		return gatehouse.Errorf(gatehouse.EInvalid, "format must be csv or ndjson")
	}
	ctx, p, scope := r.Context(), principal(r), r.PathValue("scope")
	return streamExport(h, w, r, exportSpec[*gatehouse.Device]{
		format: format, tagKeys: tagKeys,
		walk: func(fn func([]*gatehouse.Device) error) error { return h.reg.ExportDevices(ctx, p, scope, dq, fn) },
		tags: func(d *gatehouse.Device) map[string]string { return d.Tags },
		header: func(keys []string) []string {
			header := []string{"id", "state", "etag", "config"}
			for _, k := range keys {
				header = append(header, "tags."+k)
			}
			return header
		},
		row: func(row []string, d *gatehouse.Device, keys []string) {
			row[0], row[1], row[2], row[3] = d.ID, string(d.State), d.ETag, string(d.Config)
			for i, k := range keys {
				row[4+i] = d.Tags[k]
			}
		},
	})
}

// exportEnrollments streams a scope's enrollments (filtered by type and
// attestation) as NDJSON (enrollment objects, as a listing shows them) or
// CSV (the columns an enrollment import reads, less the secret ones, and
// tags.<key> columns for the initial tags). No secret is ever written: the
// registry hands out enrollments without them.
func (h *Handler) exportEnrollments(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r.URL.RawQuery, "format", "type", "attestation", "tagKeys")
	if err != nil {
		return err
	}
	var vals [4]string
	for i, name := range []string{"format", "type", "attestation", "tagKeys"} {
		if vals[i], err = single(q, name); err != nil {
			return err
		}
	}
	format, tagKeys := vals[0], vals[3]
	eq := registry.EnrollmentExportQuery{Type: gatehouse.EnrollmentType(vals[1]), Attestation: gatehouse.AttestationType(vals[2])}
	switch format {
	case "", "ndjson", "csv":
	default:
		return gatehouse.Errorf(gatehouse.EInvalid, "format must be csv or ndjson")
	}
	ctx, p, scope := r.Context(), principal(r), r.PathValue("scope")
	return streamExport(h, w, r, exportSpec[*gatehouse.Enrollment]{
		format: format, tagKeys: tagKeys,
		walk: func(fn func([]*gatehouse.Enrollment) error) error {
			return h.reg.ExportEnrollments(ctx, p, scope, eq, fn)
		},
		tags: func(e *gatehouse.Enrollment) map[string]string { return e.InitialTags },
		header: func(keys []string) []string {
			header := slices.Clone(registry.EnrollmentCSVColumns)
			for _, k := range keys {
				header = append(header, "tags."+k)
			}
			return header
		},
		row: func(row []string, e *gatehouse.Enrollment, keys []string) { registry.EnrollmentCSVRow(row, e, keys) },
	})
}

// exportSpec says how to stream one kind of record: walk hands them out a
// batch at a time; tags, header and row make the CSV form, whose tag
// columns are tagKeys or, if empty, every key among the records (found by a
// first walk).
type exportSpec[T any] struct {
	format, tagKeys string
	walk            func(func([]T) error) error
	tags            func(T) map[string]string
	header          func(tagKeys []string) []string
	row             func(row []string, v T, tagKeys []string)
}

// streamExport writes the records spec.walk yields as NDJSON or CSV,
// flushing each batch. An error before the first byte is a problem
// document; one mid-stream breaks the response off, so that the client
// sees a truncated body rather than a complete one.
func streamExport[T any](h *Handler, w http.ResponseWriter, r *http.Request, spec exportSpec[T]) error {
	var keys []string
	if spec.format == "csv" {
		if spec.tagKeys != "" {
			for k := range strings.SplitSeq(spec.tagKeys, ",") {
				if err := gatehouse.ValidateTagKey(k); err != nil {
					return err
				}
				keys = append(keys, k)
			}
		} else {
			seen := map[string]bool{}
			err := spec.walk(func(vs []T) error {
				for _, v := range vs {
					for k := range spec.tags(v) {
						seen[k] = true
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			for k := range seen {
				keys = append(keys, k)
			}
			slices.Sort(keys)
		}
	}
	http.NewResponseController(w).SetWriteDeadline(time.Time{})
	bw := bufio.NewWriterSize(w, 64<<10)
	started := false
	var cw *csv.Writer
	var row []string
	start := func() {
		if started {
			return
		}
		started = true
		if spec.format == "csv" {
			w.Header().Set("Content-Type", mediaCSV)
			w.WriteHeader(http.StatusOK)
			cw = csv.NewWriter(bw)
			header := spec.header(keys)
			cw.Write(header)
			row = make([]string, len(header))
			return
		}
		w.Header().Set("Content-Type", mediaNDJSON)
		w.WriteHeader(http.StatusOK)
	}
	enc := json.NewEncoder(bw)
	err := spec.walk(func(vs []T) error {
		start()
		for _, v := range vs {
			if cw != nil {
				spec.row(row, v, keys)
				cw.Write(row)
			} else if err := enc.Encode(v); err != nil {
				return err
			}
		}
		if cw != nil {
			cw.Flush()
		}
		return bw.Flush()
	})
	if err != nil && !started {
		return err
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "export stopped", "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	}
	start()
	if cw != nil {
		cw.Flush()
	}
	return bw.Flush()
}
