package httpapi

import (
	"bufio"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// Media types of bulk import and export.
const (
	mediaCSV    = "text/csv"
	mediaNDJSON = "application/x-ndjson"
)

// importLine is one line of an import's answer: a record's result, or the
// summary that ends it.
type importSummaryLine struct {
	Summary *registry.ImportSummary `json:"summary"`
}

// importDevices streams the request body (devices, or with
// kind=enrollments individual enrollments) into the registry and streams a
// result per record back, as NDJSON, while the body still arrives; the
// last line is the summary. Errors about the whole request (permission,
// scope, mode, a wrong header) are problem responses, as anywhere else.
func (h *Handler) importDevices(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r.URL.RawQuery, "mode", "format", "kind")
	if err != nil {
		return err
	}
	kind, err := single(q, "kind")
	if err != nil {
		return err
	}
	run := h.reg.ImportDevices
	switch kind {
	case "", "devices":
	case "enrollments":
		run = h.reg.ImportEnrollments
	default:
		return gatehouse.Errorf(gatehouse.EInvalid, "kind must be devices or enrollments")
	}
	mode, err := single(q, "mode")
	if err != nil {
		return err
	}
	if mode == "" {
		mode = string(registry.ImportCreate)
	}
	format, err := single(q, "format")
	if err != nil {
		return err
	}
	if format, err = importFormat(format, r.Header.Get("Content-Type")); err != nil {
		return err
	}
	// An import of a million rows takes longer than the server's read
	// timeout, which is meant for ordinary requests; and the answer streams
	// while the body is still being read.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})

	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	started := false
	start := func() {
		if !started {
			started = true
			rc.EnableFullDuplex()
			w.Header().Set("Content-Type", mediaNDJSON)
			w.WriteHeader(http.StatusOK)
		}
	}
	emit := func(rs []registry.ImportResult) error {
		start()
		for i := range rs {
			if err := enc.Encode(&rs[i]); err != nil {
				return err
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	sum, err := run(r.Context(), principal(r), r.PathValue("scope"),
		registry.ImportRequest{Mode: registry.ImportMode(mode), Format: registry.ImportFormat(format), Body: r.Body}, emit)
	if err != nil {
		return err
	}
	if sum.Error != nil && sum.Error.Code == gatehouse.EInternal {
		h.log.ErrorContext(r.Context(), "import stopped", "scope", r.PathValue("scope"), "kind", kind, "rows", sum.Rows)
	}
	start()
	enc.Encode(importSummaryLine{Summary: sum})
	bw.Flush()
	rc.Flush()
	return nil
}

// importFormat works out an import's format from the format parameter, or
// else from the Content-Type, and checks that the two agree.
func importFormat(format, ct string) (string, error) {
	var fromCT string
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return "", gatehouse.Errorf(gatehouse.EUnsupportedMedia, "the Content-Type header is malformed; send text/csv or application/x-ndjson")
		}
		switch mt {
		case mediaCSV:
			fromCT = "csv"
		case mediaNDJSON, "application/jsonl", mediaJSON: // one JSON object is a one-line NDJSON file
			fromCT = "ndjson"
		case "application/octet-stream", "text/plain":
		default:
			return "", gatehouse.Errorf(gatehouse.EUnsupportedMedia, "Content-Type %q is not accepted here; send text/csv or application/x-ndjson", truncate(mt, 64))
		}
	}
	format = strings.ToLower(format)
	switch {
	case format == "" && fromCT == "":
		return "", gatehouse.Errorf(gatehouse.EUnsupportedMedia, "say what the file is: Content-Type text/csv or application/x-ndjson, or format=csv|ndjson")
	case format == "":
		return fromCT, nil
	case format != "csv" && format != "ndjson":
		return "", gatehouse.Errorf(gatehouse.EInvalid, "format must be csv or ndjson")
	case fromCT != "" && fromCT != format:
		return "", gatehouse.Errorf(gatehouse.EUnsupportedMedia, "format=%s but the Content-Type says %s", format, fromCT)
	}
	return format, nil
}
