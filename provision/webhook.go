package provision

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// SignatureHeader carries a webhook request's signature:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>". The
// receiver recomputes it and rejects old timestamps, so a captured request
// cannot be replayed later.
const SignatureHeader = "X-Gatehouse-Signature"

// Sign returns the signature header value for body at time t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// HookRequest is what Gatehouse sends to an enrollment's webhooks.
type HookRequest struct {
	Kind           string          `json:"kind"` // preProvision or allocation
	Scope          string          `json:"scope"`
	EnrollmentID   string          `json:"enrollmentId"`
	RegistrationID string          `json:"registrationId"`
	DeviceID       string          `json:"deviceId"`
	Attestation    string          `json:"attestation"`
	Dialect        string          `json:"dialect"`
	Source         string          `json:"source,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	Endpoints      []string        `json:"endpoints,omitempty"` // allocation: the enrollment's endpoints
}

// PreProvisionVerdict is a pre-provision webhook's answer.
type PreProvisionVerdict struct {
	Allow  bool              `json:"allow"`
	Reason string            `json:"reason,omitempty"`
	Tags   map[string]string `json:"tags,omitempty"`
	Config json.RawMessage   `json:"config,omitempty"`
}

// AllocationVerdict is a custom allocation webhook's answer.
type AllocationVerdict struct {
	AssignedHub string          `json:"assignedHub"`
	Payload     json.RawMessage `json:"payload,omitempty"`
}

func (s *Service) hookRequest(kind string, e *gatehouse.Enrollment, req Request, deviceID string) HookRequest {
	return HookRequest{Kind: kind, Scope: req.Scope, EnrollmentID: e.ID, RegistrationID: req.RegistrationID, DeviceID: deviceID,
		Attestation: string(e.Attestation.Type), Dialect: req.Dialect, Source: req.Source, Payload: req.Payload}
}

// preProvision asks the enrollment's pre-provision webhook. It fails closed:
// no clear allow means no registration.
func (s *Service) preProvision(ctx context.Context, e *gatehouse.Enrollment, key []byte, req Request, deviceID string) (*PreProvisionVerdict, error) {
	var v PreProvisionVerdict
	if err := s.callHook(ctx, e.PreProvision, key, s.hookRequest("preProvision", e, req, deviceID), &v); err != nil {
		return nil, err
	}
	if !v.Allow {
		return nil, gatehouse.Errorf(gatehouse.EWebhookDenied, "the registration was refused by policy")
	}
	if err := gatehouse.ValidateTags(v.Tags); err != nil {
		return nil, webhookFailed("pre-provision webhook returned invalid tags: %s", gatehouse.ErrorMessage(err))
	}
	if err := gatehouse.ValidateJSONObject("config", v.Config, gatehouse.MaxConfigBytes); err != nil {
		return nil, webhookFailed("pre-provision webhook returned invalid config: %s", gatehouse.ErrorMessage(err))
	}
	return &v, nil
}

func webhookFailed(format string, args ...any) error {
	return gatehouse.Errorf(gatehouse.EWebhookFailed, format, args...)
}

// callHook POSTs a signed JSON request and decodes the answer.
func (s *Service) callHook(ctx context.Context, w *gatehouse.Webhook, key []byte, body any, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(w.Timeout))
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(raw))
	if err != nil {
		return webhookFailed("webhook URL is unusable")
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", "gatehouse-webhook/1")
	hr.Header.Set(SignatureHeader, Sign(key, raw, s.now()))
	resp, err := s.client.Do(hr)
	if err != nil {
		// Only the host is logged: a URL's path or query may carry a key.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		s.log.Warn("webhook unreachable", "host", hookHost(w.URL), "err", err)
		return webhookFailed("the enrollment's webhook did not answer; try again later")
	}
	defer resp.Body.Close()
	ans, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		s.log.Warn("webhook failed", "host", hookHost(w.URL), "status", resp.StatusCode, "err", err)
		return webhookFailed("the enrollment's webhook answered %d; try again later", resp.StatusCode)
	}
	if err := json.Unmarshal(ans, out); err != nil {
		return webhookFailed("the enrollment's webhook answered with invalid JSON: %v", truncateErr(err))
	}
	return nil
}

// hookHost is the host (and port) of a webhook URL, for logs.
func hookHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Host
}

func truncateErr(err error) string {
	s := err.Error()
	if len(s) > 100 {
		return s[:100]
	}
	return fmt.Sprint(s)
}
