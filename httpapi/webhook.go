package httpapi

import (
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func (h *Handler) createWebhook(w http.ResponseWriter, r *http.Request) error {
	var req registry.WebhookCreate
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	info, err := h.reg.CreateWebhook(r.Context(), principal(r), r.PathValue("scope"), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, info)
}

func (h *Handler) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	ws, err := h.reg.ListWebhooks(r.Context(), principal(r), r.PathValue("scope"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newList(ws))
}

func (h *Handler) getWebhook(w http.ResponseWriter, r *http.Request) error {
	info, err := h.reg.GetWebhook(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

func (h *Handler) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	if err := h.reg.DeleteWebhook(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deadLetter is a dead letter as the API shows it.
type deadLetter struct {
	Seq       int64     `json:"seq"`
	Type      string    `json:"type"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"lastError"`
	Time      time.Time `json:"time"`
}

func (h *Handler) webhookDeadLetters(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r.URL.RawQuery, "after", "limit")
	if err != nil {
		return err
	}
	after, err := parseSeq(q)
	if err != nil {
		return err
	}
	limit, err := parseLimit(q, gatehouse.MaxEventPage)
	if err != nil {
		return err
	}
	dls, err := h.reg.DeadLetters(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"), after, limit)
	if err != nil {
		return err
	}
	out := make([]deadLetter, 0, len(dls))
	for _, d := range dls {
		out = append(out, deadLetter{Seq: d.Seq, Type: d.Type, Attempts: d.Attempts, LastError: d.LastError, Time: d.Time})
	}
	return writeJSON(w, http.StatusOK, newList(out))
}

// replayRequest moves a webhook's cursor.
type replayRequest struct {
	FromSeq int64 `json:"fromSeq"`
}

func (h *Handler) replayWebhook(w http.ResponseWriter, r *http.Request) error {
	var req replayRequest
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	info, err := h.reg.ReplayWebhook(r.Context(), principal(r), r.PathValue("scope"), r.PathValue("id"), req.FromSeq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

// auditParams are the events route's filter parameters.
var auditParams = []string{"actor", "subject", "type", "since", "until"}

// parseEventQuery reads the audit filters; ok is false when none is set.
func parseEventQuery(q url.Values) (eq registry.EventQuery, ok bool, err error) {
	for _, name := range auditParams {
		v, err := single(q, name)
		if err != nil {
			return eq, false, err
		}
		if v == "" {
			continue
		}
		ok = true
		switch name {
		case "actor":
			eq.Actor = v
		case "subject":
			eq.Subject = v
		case "type":
			eq.Type = v
		case "since", "until":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return eq, false, gatehouse.Errorf(gatehouse.EInvalid, "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
			}
			if name == "since" {
				eq.Since = t
			} else {
				eq.Until = t
			}
		}
	}
	return eq, ok, nil
}

func (h *Handler) deviceCounts(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r.URL.RawQuery, "by")
	if err != nil {
		return err
	}
	by, err := single(q, "by")
	if err != nil {
		return err
	}
	if by == "" {
		by = "state"
	}
	c, err := h.reg.CountDevices(r.Context(), principal(r), r.PathValue("scope"), by)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}
