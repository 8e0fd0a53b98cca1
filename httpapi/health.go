package httpapi

import (
	_ "embed"
	"errors"
	"net/http"

	"github.com/gatehouse-iot/gatehouse"
)

// openAPIDoc is the API's OpenAPI 3.1 description, written by hand and held
// to the route table by a test.
//
//go:embed openapi.json
var openAPIDoc []byte

// healthz says the process is alive. It touches no dependency, so a
// database outage does not get a healthy process restarted.
func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz says whether the node can serve: its store is reachable and migrated.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) error {
	if err := h.reg.Ready(r.Context()); err != nil {
		// The cause goes to the log at the edge; the client learns only
		// that the node is not ready.
		return errors.Join(gatehouse.Errorf(gatehouse.EUnavailable, "not ready: the database is unreachable or not migrated"), err)
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", mediaJSON)
	w.Write(openAPIDoc)
	return nil
}
