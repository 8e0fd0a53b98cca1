package httpapi

import "net/http"

type scopeCreate struct {
	ID string `json:"id"`
}

func (h *Handler) createScope(w http.ResponseWriter, r *http.Request) error {
	var req scopeCreate
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	sc, err := h.reg.CreateScope(r.Context(), principal(r), req.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/scopes/"+sc.ID)
	return writeJSON(w, http.StatusCreated, sc)
}

func (h *Handler) listScopes(w http.ResponseWriter, r *http.Request) error {
	scopes, err := h.reg.ListScopes(r.Context(), principal(r))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newList(scopes))
}

func (h *Handler) getScope(w http.ResponseWriter, r *http.Request) error {
	sc, err := h.reg.GetScope(r.Context(), principal(r), r.PathValue("scope"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sc)
}
