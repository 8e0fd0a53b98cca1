package httpapi

import (
	"net/http"

	"github.com/gatehouse-iot/gatehouse/registry"
)

// createToken answers with the token's secret, shown this once. The access
// log never records bodies, so the secret stays out of it.
func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) error {
	var req registry.TokenRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	g, err := h.reg.CreateToken(r.Context(), principal(r), r.PathValue("scope"), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, g)
}

func (h *Handler) listTokens(w http.ResponseWriter, r *http.Request) error {
	ts, err := h.reg.ListTokens(r.Context(), principal(r), r.PathValue("scope"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newList(ts))
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request) error {
	if err := h.reg.RevokeToken(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
