package mqttapi

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
	"github.com/gatehouse-iot/gatehouse/ca"
)

// HookOption configures the external broker hook.
type HookOption func(*hookHandler)

// WithHookLogger sets the hook's logger.
func WithHookLogger(l *slog.Logger) HookOption { return func(h *hookHandler) { h.log = l } }

// WithHookSecret requires "Authorization: Bearer {secret}" on every hook
// request (configure it as a header of the broker's HTTP authenticator).
func WithHookSecret(secret string) HookOption { return func(h *hookHandler) { h.secret = secret } }

// WithHookClock sets the time source.
func WithHookClock(now func() time.Time) HookOption { return func(h *hookHandler) { h.now = now } }

type hookHandler struct {
	reg    Registry
	prov   Provisioner
	log    *slog.Logger
	secret string
	now    func() time.Time
	topics *topicPolicies // each scope's topic templates, read again after hookPolicyTTL
}

// hookPolicyTTL is how long the hook trusts a scope's topic policy it
// read: it follows no events, so a change reaches it within this time.
const hookPolicyTTL = 5 * time.Second

// NewHookHandler returns the HTTP hook an external broker (EMQX 5 HTTP
// authentication and authorisation, or Mosquitto through an HTTP auth
// plugin) asks: POST {prefix}/authn and POST {prefix}/authz, JSON in and
// out. See docs/mqtt.md for the request templates.
func NewHookHandler(reg Registry, prov Provisioner, opts ...HookOption) http.Handler {
	h := &hookHandler{reg: reg, prov: prov, log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		o(h)
	}
	h.topics = newTopicPolicies(reg, h.log, hookPolicyTTL)
	h.topics.now = h.now
	mux := http.NewServeMux()
	mux.HandleFunc("POST /authn", h.authn)
	mux.HandleFunc("POST /authz", h.authz)
	// mosquitto-go-auth's HTTP backend (params mode json, response mode
	// status: 200 allows, anything else denies).
	mux.HandleFunc("POST /mosquitto/user", h.mosquittoUser)
	mux.HandleFunc("POST /mosquitto/acl", h.mosquittoACL)
	mux.HandleFunc("POST /mosquitto/superuser", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := h.decode(w, r); ok {
			http.Error(w, "devices are never superusers", http.StatusForbidden)
		}
	})
	return mux
}

// HookRequest is what the broker sends (its placeholders filled in).
// Everything is optional; what is present decides how the client is
// authenticated.
type HookRequest struct {
	ClientID string `json:"clientid"`
	Username string `json:"username"`
	Password string `json:"password"`
	PeerHost string `json:"peerhost"`
	CertPEM  string `json:"cert_pem"`         // the client's certificate (and chain), PEM, when the broker can send it
	CertCN   string `json:"cert_common_name"` // trusted only with a hook secret: the broker verified the certificate
	Scope    string `json:"scope"`            // for authz: ${client_attrs.scope}; default from username, else "default"
	Action   string `json:"action"`
	Topic    string `json:"topic"`
	Acc      int    `json:"acc"` // mosquitto-go-auth: 1 read, 2 write, 3 read and write, 4 subscribe
}

// HookACLRule is one EMQX ACL rule.
type HookACLRule struct {
	Permission string `json:"permission"`
	Action     string `json:"action"`
	Topic      string `json:"topic"`
}

// HookResponse is the answer.
type HookResponse struct {
	Result      string            `json:"result"` // allow | deny | ignore
	IsSuperuser bool              `json:"is_superuser"`
	ACL         []HookACLRule     `json:"acl,omitempty"`
	ExpireAt    int64             `json:"expire_at,omitempty"`
	ClientAttrs map[string]string `json:"client_attrs,omitempty"`
}

func (h *hookHandler) decode(w http.ResponseWriter, r *http.Request) (*HookRequest, bool) {
	if h.secret != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(h.secret)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return nil, false
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return nil, false
	}
	var in HookRequest
	if err := json.Unmarshal(body, &in); err != nil {
		http.Error(w, "the body must be a JSON object", http.StatusBadRequest)
		return nil, false
	}
	return &in, true
}

func writeHook(w http.ResponseWriter, resp HookResponse) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

// deviceACL is a device's topic policy as EMQX rules, first match wins:
// its configuration (subscribe only) and reported topics, then each of the
// scope's topic templates filled in for the device (as a subscription
// filter, eq, and as a pattern). EMQX's '#' also matches the level above
// it, one level more than the authz hook allows.
func deviceACL(p *gatehouse.TopicPolicy, scope, id string) []HookACLRule {
	rules := []HookACLRule{
		{Permission: "deny", Action: "publish", Topic: "eq " + ConfigTopic(id)},
		{Permission: "allow", Action: "subscribe", Topic: "eq " + ConfigTopic(id)},
		{Permission: "allow", Action: "all", Topic: "eq " + ReportedTopic(id)},
	}
	for _, f := range p.Expand(scope, id) {
		rules = append(rules, HookACLRule{Permission: "allow", Action: "all", Topic: "eq " + f})
		if hasWildcard(f) {
			rules = append(rules, HookACLRule{Permission: "allow", Action: "all", Topic: f})
		}
	}
	return append(rules, HookACLRule{Permission: "deny", Action: "all", Topic: "#"})
}

// authn authenticates a device by its certificate (cert_pem; or, from a
// broker holding the hook secret, the common name of a certificate it
// verified) or a SAS token (username {scope}/{deviceId}, password). A request with neither is
// "ignore" (the broker's next authenticator decides); a failed one "deny".
func (h *hookHandler) authn(w http.ResponseWriter, r *http.Request) {
	in, ok := h.decode(w, r)
	if !ok {
		return
	}
	d, expire, result := h.authenticate(r.Context(), in)
	if result == "unavailable" {
		http.Error(w, "unavailable", http.StatusServiceUnavailable) // the broker treats it per its config
		return
	}
	if result != "allow" {
		writeHook(w, HookResponse{Result: result})
		return
	}
	t, err := h.topics.get(r.Context(), d.Scope)
	if err != nil {
		h.log.Error("mqtt hook: read the scope's topic policy", "scope", d.Scope, "err", err)
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	h.reg.DeviceSeen(d.Scope, d.ID, "mqtt-external")
	resp := HookResponse{Result: "allow", ACL: deviceACL(t.policy(), d.Scope, d.ID), ClientAttrs: map[string]string{"scope": d.Scope, "device_id": d.ID}}
	if !expire.IsZero() {
		resp.ExpireAt = expire.Unix()
	}
	writeHook(w, resp)
}

// authz answers one publish or subscribe: the device (named by the
// client ID, its scope by scope or the username) must exist in a state
// that may authenticate, and the topic must be its own.
func (h *hookHandler) authz(w http.ResponseWriter, r *http.Request) {
	in, ok := h.decode(w, r)
	if !ok {
		return
	}
	write := in.Action == "publish"
	if !write && in.Action != "subscribe" {
		writeHook(w, HookResponse{Result: "deny"})
		return
	}
	if h.authorize(r.Context(), in, write) {
		writeHook(w, HookResponse{Result: "allow"})
		return
	}
	writeHook(w, HookResponse{Result: "deny"})
}

// authorize applies a device's topic policy to one request.
func (h *hookHandler) authorize(ctx context.Context, in *HookRequest, write bool) bool {
	scope, id := in.Scope, in.ClientID
	if sc, uid, ok := parseDeviceUsername(in.Username); ok && scope == "" && (id == "" || uid == id) {
		scope, id = sc, uid
	}
	if scope == "" {
		scope = gatehouse.DefaultScope
	}
	if gatehouse.ValidateScopeID(scope) != nil || gatehouse.ValidateDeviceID(id) != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := h.reg.DeviceByID(ctx, scope, id)
	if err != nil || !d.State.CanAuthenticate() {
		if err != nil && gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			h.log.Error("mqtt hook: read device", "scope", scope, "device_id", id, "err", err)
		}
		return false
	}
	t, err := h.topics.get(ctx, scope)
	if err != nil {
		h.log.Error("mqtt hook: read the scope's topic policy", "scope", scope, "err", err)
		return false
	}
	s := &session{kind: kindDevice, scope: scope, id: id, topics: t}
	return s.allowed(in.Topic, write)
}

// mosquittoUser is mosquitto-go-auth's user check: 200 allows.
func (h *hookHandler) mosquittoUser(w http.ResponseWriter, r *http.Request) {
	in, ok := h.decode(w, r)
	if !ok {
		return
	}
	d, _, result := h.authenticate(r.Context(), in)
	switch result {
	case "allow":
		h.reg.DeviceSeen(d.Scope, d.ID, "mqtt-external")
		w.WriteHeader(http.StatusOK)
	case "unavailable":
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	default:
		http.Error(w, "denied", http.StatusForbidden)
	}
}

// mosquittoACL is mosquitto-go-auth's ACL check: acc 2 (write) and 3
// (read and write) are checked as publishes, 1 (read) and 4 (subscribe)
// as subscriptions.
func (h *hookHandler) mosquittoACL(w http.ResponseWriter, r *http.Request) {
	in, ok := h.decode(w, r)
	if !ok {
		return
	}
	var allowed bool
	if !mosquittoClientBound(in) {
		http.Error(w, "denied", http.StatusForbidden)
		return
	}
	switch in.Acc {
	case 1, 4:
		allowed = h.authorize(r.Context(), in, false)
	case 2, 3:
		allowed = h.authorize(r.Context(), in, true) && (in.Acc == 2 || h.authorize(r.Context(), in, false))
	}
	if allowed {
		w.WriteHeader(http.StatusOK)
		return
	}
	http.Error(w, "denied", http.StatusForbidden)
}

// mosquittoClientBound reports whether a Mosquitto ACL request's client ID
// names the device its username does. Mosquitto authenticated the username
// (a SAS device's {scope}/{deviceId} through /mosquitto/user, or the
// certificate's CN with use_identity_as_username, which never reaches the
// hook); the client ID is the client's own choice, and authorize takes the
// device from it.
func mosquittoClientBound(in *HookRequest) bool {
	id := in.Username
	if _, uid, ok := parseDeviceUsername(in.Username); ok {
		id = uid
	}
	return id != "" && in.ClientID == id
}

// authenticate checks a hook request's credentials: "allow" with the
// device and when its credential expires, "deny", "ignore" (no credential
// Gatehouse knows) or "unavailable".
func (h *hookHandler) authenticate(ctx context.Context, in *HookRequest) (*gatehouse.Device, time.Time, string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var (
		d      *gatehouse.Device
		expire time.Time
		err    error
	)
	switch {
	case strings.TrimSpace(in.CertPEM) != "":
		var chain []*x509.Certificate
		rest := []byte(in.CertPEM)
		for len(chain) < 8 {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			c, perr := x509.ParseCertificate(blk.Bytes)
			if perr != nil {
				break
			}
			chain = append(chain, c)
		}
		if len(chain) == 0 {
			return nil, time.Time{}, "deny"
		}
		scope, id, ierr := ca.IdentityFromCertificate(chain[0])
		if ierr != nil || in.ClientID != "" && in.ClientID != id {
			return nil, time.Time{}, "deny"
		}
		d, _, err = h.reg.AuthenticateCertificate(ctx, scope, chain[0], chain[1:])
		expire = chain[0].NotAfter
	case in.CertCN != "" && h.secret != "":
		// The broker verified the client certificate itself (against the
		// scope CAs, with its CRL check) and vouches for it with the hook
		// secret: the common name is the device ID. Without a secret a
		// bare name proves nothing.
		scope := in.Scope
		if scope == "" {
			scope = gatehouse.DefaultScope
		}
		if gatehouse.ValidateScopeID(scope) != nil || gatehouse.ValidateDeviceID(in.CertCN) != nil || in.ClientID != "" && in.ClientID != in.CertCN {
			return nil, time.Time{}, "deny"
		}
		d, err = h.reg.DeviceByID(ctx, scope, in.CertCN)
		if err == nil && !d.State.CanAuthenticate() {
			err = gatehouse.Errorf(gatehouse.EForbidden, "device %q is %s", d.ID, d.State)
		}
	case in.Password != "" && in.Username != "":
		scope, id, ok := parseDeviceUsername(in.Username)
		if !ok || in.ClientID != "" && in.ClientID != id {
			return nil, time.Time{}, "deny"
		}
		sas, perr := attest.ParseSAS(in.Password)
		if perr != nil {
			return nil, time.Time{}, "deny"
		}
		d, err = h.prov.AuthenticateDeviceSAS(ctx, scope, id, in.Password, in.PeerHost)
		expire = sas.Expiry
	default:
		return nil, time.Time{}, "ignore"
	}
	if err != nil {
		switch gatehouse.ErrorCode(err) {
		case gatehouse.EInternal, gatehouse.EUnavailable:
			h.log.Error("mqtt hook: authenticate", "err", err)
			return nil, time.Time{}, "unavailable"
		}
		h.log.Info("mqtt hook: authentication refused", "client_id", truncate(in.ClientID, 64), "peer", in.PeerHost, "err", err)
		return nil, time.Time{}, "deny"
	}
	return d, expire, "allow"
}
