package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// events lists a scope's event log after a sequence number, or streams it
// as Server-Sent Events when the client accepts text/event-stream.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r.URL.RawQuery, append([]string{"after", "limit"}, auditParams...)...)
	if err != nil {
		return err
	}
	eq, filtered, err := parseEventQuery(q)
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
	scope := r.PathValue("scope")
	if acceptsEventStream(r.Header.Values("Accept")) {
		if filtered {
			return gatehouse.Errorf(gatehouse.EInvalid, "the event stream takes no filters (actor, subject, type, since, until); filter the list, or filter as you read")
		}
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			n, err := strconv.ParseInt(strings.TrimSpace(id), 10, 64)
			if err != nil || n < 0 {
				return gatehouse.Errorf(gatehouse.EInvalid, "Last-Event-ID must be an event sequence number")
			}
			after = n
		}
		return h.streamEvents(w, r, scope, after)
	}
	if filtered {
		eq.After, eq.Limit = after, limit
		evs, err := h.reg.QueryEvents(r.Context(), principal(r), scope, eq)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, newList(evs))
	}
	evs, err := h.reg.Events(r.Context(), principal(r), scope, after, limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newList(evs))
}

// parseSeq parses the after parameter: a sequence number, 0 for the start.
func parseSeq(q map[string][]string) (int64, error) {
	vs := q["after"]
	if len(vs) == 0 || vs[0] == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(vs[0], 10, 64)
	if len(vs) > 1 || err != nil || n < 0 {
		return 0, gatehouse.Errorf(gatehouse.EInvalid, "after must be one event sequence number (0 or more)")
	}
	return n, nil
}

// acceptsEventStream reports whether the Accept header asks for SSE.
func acceptsEventStream(accept []string) bool {
	for _, a := range accept {
		for part := range strings.SplitSeq(a, ",") {
			if mt, _, err := mime.ParseMediaType(part); err == nil && mt == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

// streamEvents sends the log after seq as Server-Sent Events and follows
// it until the client goes away. The first read happens before the status
// line, so a caller without access gets an ordinary problem response.
func (h *Handler) streamEvents(w http.ResponseWriter, r *http.Request, scope string, after int64) error {
	ctx := r.Context()
	p := principal(r)
	// The first read authorises, before anything is allocated for the
	// scope (EventSignal keeps a channel per scope name it is asked about).
	if _, err := h.reg.Events(ctx, p, scope, after, 1); err != nil {
		return err
	}
	// Take the signal before reading: a commit after this point closes it,
	// so no event falls between a read and the wait.
	signal := h.reg.EventSignal(scope)
	evs, err := h.reg.Events(ctx, p, scope, after, gatehouse.MaxEventPage)
	if err != nil {
		return err
	}

	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a server-wide write timeout would cut the stream
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// A retry hint, and something to flush so the client sees the headers now.
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return nil
	}

	poll := time.NewTicker(h.poll)
	defer poll.Stop()
	keepalive := time.NewTicker(h.keepalive)
	defer keepalive.Stop()
	var buf bytes.Buffer
	for {
		buf.Reset()
		for _, e := range evs {
			data, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("encode event %d: %w", e.Seq, err)
			}
			fmt.Fprintf(&buf, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, sseField(e.Type), data)
			after = e.Seq
		}
		if buf.Len() > 0 {
			if _, err := w.Write(buf.Bytes()); err != nil {
				return nil // the client went away
			}
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		if len(evs) < gatehouse.MaxEventPage {
			if !h.wait(r, signal, poll.C, keepalive.C, w, rc) {
				return nil
			}
		}
		signal = h.reg.EventSignal(scope)
		evs, err = h.reg.Events(ctx, p, scope, after, gatehouse.MaxEventPage)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("event stream: %w", err)
		}
	}
}

// wait blocks until the log may have grown: a signal from this node, or
// the poll interval for other nodes. It sends keepalive comments meanwhile,
// and checks each time that the caller's token still authenticates, so a
// revoked token cannot follow the log for ever. It returns false when the
// stream should end.
func (h *Handler) wait(r *http.Request, signal <-chan struct{}, poll, keepalive <-chan time.Time, w http.ResponseWriter, rc *http.ResponseController) bool {
	for {
		select {
		case <-r.Context().Done():
			return false
		case <-h.done:
			return false
		case <-signal:
			return true
		case <-poll:
			return true
		case <-keepalive:
			if _, err := h.authenticate(r); err != nil {
				return false
			}
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return false
			}
			if err := rc.Flush(); err != nil {
				return false
			}
		}
	}
}

// sseField keeps a value on one line of the event stream.
func sseField(s string) string {
	return strings.NewReplacer("\r", "", "\n", "").Replace(s)
}
