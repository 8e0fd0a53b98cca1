package httpapi

import (
	"net/http"
	"net/url"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func (h *Handler) createDevice(w http.ResponseWriter, r *http.Request) error {
	var req registry.DeviceCreate
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	d, err := h.reg.CreateDevice(r.Context(), principal(r), r.PathValue("scope"), req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/scopes/"+url.PathEscape(d.Scope)+"/devices/"+url.PathEscape(d.ID))
	return writeDevice(w, http.StatusCreated, d)
}

func (h *Handler) getDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := h.reg.GetDevice(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeDevice(w, http.StatusOK, d)
}

func (h *Handler) listDevices(w http.ResponseWriter, r *http.Request) error {
	q, err := parseDeviceQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	page, err := h.reg.ListDevices(r.Context(), principal(r), r.PathValue("scope"), q)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list[*gatehouse.Device]{Items: newList(page.Items).Items, NextCursor: page.NextCursor})
}

// patchDevice applies a JSON merge patch (RFC 7386) of tags and config.
func (h *Handler) patchDevice(w http.ResponseWriter, r *http.Request) error {
	body, err := h.readBody(w, r, mediaMergePatch, mediaJSON)
	if err != nil {
		return err
	}
	patch, err := gatehouse.ParseDevicePatch(body)
	if err != nil {
		return err
	}
	d, err := h.reg.PatchDevice(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"), patch, ifMatch(r))
	if err != nil {
		return err
	}
	return writeDevice(w, http.StatusOK, d)
}

func (h *Handler) deleteDevice(w http.ResponseWriter, r *http.Request) error {
	if err := h.reg.DeleteDevice(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"), ifMatch(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// stateRequest moves a device through its lifecycle.
type stateRequest struct {
	State  gatehouse.State `json:"state"`
	Reason string          `json:"reason,omitempty"`
}

func (h *Handler) setState(w http.ResponseWriter, r *http.Request) error {
	var req stateRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	d, err := h.reg.SetState(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"), req.State, req.Reason, ifMatch(r))
	if err != nil {
		return err
	}
	return writeDevice(w, http.StatusOK, d)
}

func (h *Handler) deviceHistory(w http.ResponseWriter, r *http.Request) error {
	hist, err := h.reg.DeviceHistory(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newList(hist))
}

// writeDevice writes a device with its etag in the ETag header, for
// If-Match on the next write.
func writeDevice(w http.ResponseWriter, status int, d *gatehouse.Device) error {
	w.Header().Set("ETag", quoteETag(d.ETag))
	return writeJSON(w, status, d)
}
