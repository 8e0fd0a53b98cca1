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
	var keys []string
	if format == "csv" {
		if tagKeys != "" {
			for k := range strings.SplitSeq(tagKeys, ",") {
				if err := gatehouse.ValidateTagKey(k); err != nil {
					return err
				}
				keys = append(keys, k)
			}
		} else {
			// The tag columns are every key among the selected devices: a
			// first pass reads them (pass tagKeys to skip it).
			seen := map[string]bool{}
			err := h.reg.ExportDevices(ctx, p, scope, dq, func(ds []*gatehouse.Device) error {
				for _, d := range ds {
					for k := range d.Tags {
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
		if format == "csv" {
			w.Header().Set("Content-Type", mediaCSV)
			w.WriteHeader(http.StatusOK)
			cw = csv.NewWriter(bw)
			row = append([]string{"id", "state", "etag", "config"}, make([]string, len(keys))...)
			for i, k := range keys {
				row[4+i] = "tags." + k
			}
			cw.Write(row)
			return
		}
		w.Header().Set("Content-Type", mediaNDJSON)
		w.WriteHeader(http.StatusOK)
	}
	enc := json.NewEncoder(bw)
	err = h.reg.ExportDevices(ctx, p, scope, dq, func(ds []*gatehouse.Device) error {
		start()
		for _, d := range ds {
			if cw != nil {
				row[0], row[1], row[2], row[3] = d.ID, string(d.State), d.ETag, string(d.Config)
				for i, k := range keys {
					row[4+i] = d.Tags[k]
				}
				cw.Write(row)
			} else if err := enc.Encode(d); err != nil {
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
		// Mid-stream: all that is left is to break the response off, so
		// that the client sees a truncated body, not a complete one.
		h.log.ErrorContext(ctx, "export stopped", "scope", scope, "err", err)
		panic(http.ErrAbortHandler)
	}
	start()
	if cw != nil {
		cw.Flush()
	}
	return bw.Flush()
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
	var keys []string
	if format == "csv" {
		if tagKeys != "" {
			for k := range strings.SplitSeq(tagKeys, ",") {
				if err := gatehouse.ValidateTagKey(k); err != nil {
					return err
				}
				keys = append(keys, k)
			}
		} else {
			seen := map[string]bool{}
			err := h.reg.ExportEnrollments(ctx, p, scope, eq, func(es []*gatehouse.Enrollment) error {
				for _, e := range es {
					for k := range e.InitialTags {
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
		if format == "csv" {
			w.Header().Set("Content-Type", mediaCSV)
			w.WriteHeader(http.StatusOK)
			cw = csv.NewWriter(bw)
			header := slices.Clone(registry.EnrollmentCSVColumns)
			for _, k := range keys {
				header = append(header, "tags."+k)
			}
			cw.Write(header)
			row = make([]string, len(header))
			return
		}
		w.Header().Set("Content-Type", mediaNDJSON)
		w.WriteHeader(http.StatusOK)
	}
	enc := json.NewEncoder(bw)
	err = h.reg.ExportEnrollments(ctx, p, scope, eq, func(es []*gatehouse.Enrollment) error {
		start()
		for _, e := range es {
			if cw != nil {
				registry.EnrollmentCSVRow(row, e, keys)
				cw.Write(row)
			} else if err := enc.Encode(e); err != nil {
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
		h.log.ErrorContext(ctx, "export stopped", "scope", scope, "err", err)
		panic(http.ErrAbortHandler)
	}
	start()
	if cw != nil {
		cw.Flush()
	}
	return bw.Flush()
}
