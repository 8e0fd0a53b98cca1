package httpapi

import (
	"bufio"
	"net/http"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// importJobRetryAfter is what a client told rate_limited (the node runs
// its limit of import jobs) should wait, in seconds.
const importJobRetryAfter = "30"

// createImportJob takes an import file (the parameters of POST .../imports)
// and answers 202 once it is spooled; the import runs in the background.
func (h *Handler) createImportJob(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r.URL.RawQuery, "mode", "format", "kind")
	if err != nil {
		return err
	}
	kind, err := single(q, "kind")
	if err != nil {
		return err
	}
	mode, err := single(q, "mode")
	if err != nil {
		return err
	}
	format, err := single(q, "format")
	if err != nil {
		return err
	}
	if format, err = importFormat(format, r.Header.Get("Content-Type")); err != nil {
		return err
	}
	// A large upload takes longer than the read timeout meant for
	// ordinary requests.
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	scope := r.PathValue("scope")
	job, err := h.reg.CreateImportJob(r.Context(), principal(r), scope, registry.ImportJobCreate{
		Kind: kind, Mode: registry.ImportMode(mode), Format: registry.ImportFormat(format), Body: r.Body,
	})
	if gatehouse.ErrorCode(err) == gatehouse.ERateLimited {
		w.Header().Set("Retry-After", importJobRetryAfter)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/scopes/"+scope+"/import-jobs/"+job.ID)
	return writeJSON(w, http.StatusAccepted, job)
}

func (h *Handler) getImportJob(w http.ResponseWriter, r *http.Request) error {
	job, err := h.reg.GetImportJob(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, job)
}

func (h *Handler) listImportJobs(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r.URL.RawQuery, "cursor", "limit")
	if err != nil {
		return err
	}
	cursor, err := single(q, "cursor")
	if err != nil {
		return err
	}
	limit, err := parseLimit(q, 1000)
	if err != nil {
		return err
	}
	page, err := h.reg.ListImportJobs(r.Context(), principal(r), r.PathValue("scope"), cursor, limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list[*registry.ImportJobInfo]{Items: page.Items, NextCursor: page.NextCursor})
}

// cancelImportJob asks a job to stop before its next batch; 202, since it
// stops a moment later (on whichever node runs it).
func (h *Handler) cancelImportJob(w http.ResponseWriter, r *http.Request) error {
	job, err := h.reg.CancelImportJob(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, job)
}

// Values of the Gatehouse-Results header of GET .../results.
const (
	resultsFull     = "full"     // every record's result, from the node's result file
	resultsRejected = "rejected" // only the refused records the database keeps
)

// importJobResults answers a job's per-row results as the synchronous
// import streams them. The node that ran the job has the full file; another
// node answers the refused records the database keeps (the first 10,000)
// and says so in Gatehouse-Results.
func (h *Handler) importJobResults(w http.ResponseWriter, r *http.Request) error {
	res, err := h.reg.ImportJobResults(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", mediaNDJSON)
	if res.Full {
		w.Header().Set("Gatehouse-Results", resultsFull)
	} else {
		w.Header().Set("Gatehouse-Results", resultsRejected)
		w.Header().Set("Gatehouse-Results-Node", res.Job.Node)
	}
	http.NewResponseController(w).SetWriteDeadline(time.Time{})
	bw := bufio.NewWriterSize(w, 64<<10)
	w.WriteHeader(http.StatusOK)
	if err := res.WriteTo(r.Context(), bw); err != nil {
		return err
	}
	return bw.Flush()
}
