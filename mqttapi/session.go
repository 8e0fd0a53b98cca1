package mqttapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/provision"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// Protocol is how presence records MQTT sessions.
const Protocol = "mqtt"

type sessionKind int

const (
	kindDevice sessionKind = iota + 1
	kindDPS
	kindNative
)

func (k sessionKind) String() string {
	switch k {
	case kindDevice:
		return "device"
	case kindDPS:
		return "dps"
	case kindNative:
		return "native"
	}
	return "unknown"
}

// session is one authenticated connection.
type session struct {
	cl     *mqtt.Client
	kind   sessionKind
	scope  string
	id     string // device ID, or registration ID for provisioning
	serial string // the credential it authenticated with: a certificate's serial, or its key's ID
	mount  string // the internal topic prefix of this session
	authAt time.Time

	topics *scopeTopics      // the scope's topic policy (device sessions)
	device *gatehouse.Device // as authenticated (device sessions), until the session is established
	prov   *provisioning     // provisioning sessions only

	established atomic.Bool
	violations  atomic.Int32
}

// provisioning is the state of a provisioning session (kept apart: device
// sessions, the many held ones, do not carry it).
type provisioning struct {
	req    provision.Request // the proof, repeated for each request
	issued sync.Map          // DPS operation ID -> *issuedEntry
	busy   atomic.Bool       // a provisioning request is running
}

func (s *session) deviceKey() string { return s.scope + "/" + s.id }

// mountFor returns a session's internal topic prefix. Scope IDs hold no
// '/', and '~' starts no device topic, so prefixes never overlap.
func mountFor(kind sessionKind, scope, id string) string {
	if kind == kindDevice {
		return scope + "/"
	}
	return scope + "/~p/" + id + "/"
}

// authError is a refused CONNECT: the reason code and, for the log, why.
type authError struct {
	code packets.Code
	err  error
}

func (e *authError) Error() string { return e.code.Reason + ": " + e.err.Error() }

func refused(code packets.Code, err error) *authError { return &authError{code: code, err: err} }

// connectCodes is the one table from Gatehouse error codes to CONNACK
// reason codes. Codes missing here answer "server unavailable".
var connectCodes = map[string]packets.Code{
	gatehouse.EUnauthenticated:    packets.ErrBadUsernameOrPassword,
	gatehouse.EAttestationFailed:  packets.ErrBadUsernameOrPassword,
	gatehouse.EEnrollmentNotFound: packets.ErrBadUsernameOrPassword,
	gatehouse.EInvalidID:          packets.ErrBadUsernameOrPassword,
	gatehouse.EInvalid:            packets.ErrBadUsernameOrPassword,
	gatehouse.ENotFound:           packets.ErrBadUsernameOrPassword,
	gatehouse.EForbidden:          packets.ErrNotAuthorized,
	gatehouse.EEnrollmentDisabled: packets.ErrNotAuthorized,
	gatehouse.EEnrollmentExpired:  packets.ErrNotAuthorized,
	gatehouse.EDeviceDisabled:     packets.ErrNotAuthorized,
	gatehouse.ECredentialDenied:   packets.ErrNotAuthorized,
	gatehouse.EDeviceQuarantined:  packets.ErrBanned,
	gatehouse.ERateLimited:        packets.ErrConnectionRateExceeded,
}

// stateCode is the CONNACK (and DISCONNECT) reason for a device whose
// state forbids a session: inactive is "not authorized" (an operator may
// reactivate it), quarantined and decommissioned are "banned".
func stateCode(st gatehouse.State) packets.Code {
	switch st {
	case gatehouse.StateQuarantined, gatehouse.StateDecommissioned:
		return packets.ErrBanned
	}
	return packets.ErrNotAuthorized
}

func codeFor(err error) packets.Code {
	if c, ok := connectCodes[gatehouse.ErrorCode(err)]; ok {
		return c
	}
	return packets.ErrServerUnavailable
}

func hostOf(remote string) string {
	h, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return h
}

// authenticate decides what a CONNECT is and checks its proof.
func (b *Broker) authenticate(ctx context.Context, cl *mqtt.Client, pk packets.Packet) (*session, *authError) {
	username, password := string(pk.Connect.Username), string(pk.Connect.Password)
	clientID := pk.Connect.ClientIdentifier
	chain := peerChain(cl.Net.Conn)
	source := hostOf(cl.Net.Remote)
	if len(username) > 1024 || len(password) > attest.MaxSASLength {
		return nil, refused(packets.ErrBadUsernameOrPassword, errors.New("username or password too long"))
	}

	// The DPS provisioning dialect.
	if u, ok := parseDPSUsername(username); ok {
		if clientID != u.registrationID {
			return nil, refused(packets.ErrClientIdentifierNotValid, errors.New("DPS client ID must be the registration ID"))
		}
		req := provision.Request{Scope: u.scope, RegistrationID: u.registrationID, Dialect: "mqtt", Source: source}
		switch {
		case password != "":
			req.SAS = password
		case len(chain) > 0:
			req.Chain = chain
		default:
			return nil, refused(packets.ErrBadUsernameOrPassword, errors.New("no SAS token and no client certificate"))
		}
		if err := b.prov.Attest(ctx, req); err != nil {
			return nil, refused(codeFor(err), err)
		}
		return &session{kind: kindDPS, scope: u.scope, id: u.registrationID, prov: &provisioning{req: req}}, nil
	}

	// A device's operational certificate.
	if len(chain) > 0 {
		if scope, id, err := ca.IdentityFromCertificate(chain[0]); err == nil {
			if clientID != id {
				return nil, refused(packets.ErrClientIdentifierNotValid, errors.New("client ID must be the device ID"))
			}
			d, cred, err := b.reg.AuthenticateCertificate(ctx, scope, chain[0], chain[1:])
			if err != nil {
				return nil, b.deviceRefusal(ctx, scope, id, err)
			}
			return &session{kind: kindDevice, scope: scope, id: d.ID, serial: cred.ID, device: d}, nil
		}
	}

	if username == "" {
		return nil, refused(packets.ErrBadUsernameOrPassword, errors.New("no credentials"))
	}
	scope, id, ok := parseDeviceUsername(username)
	if !ok {
		return nil, refused(packets.ErrBadUsernameOrPassword, errors.New("username is not {scope}/{deviceId}"))
	}
	if clientID != id {
		return nil, refused(packets.ErrClientIdentifierNotValid, errors.New("client ID must be the device (or registration) ID"))
	}
	req := provision.Request{Scope: scope, RegistrationID: id, Dialect: "mqtt", Source: source}
	switch {
	case strings.HasPrefix(strings.ToLower(password), "sharedaccesssignature"):
		sas, err := attest.ParseSAS(password)
		if err != nil {
			return nil, refused(packets.ErrBadUsernameOrPassword, err)
		}
		if sas.CheckResource(scope, id) == nil {
			// A registration token: native provisioning.
			req.SAS = password
			break
		}
		d, err := b.prov.AuthenticateDeviceSAS(ctx, scope, id, password, source)
		if err != nil {
			return nil, b.deviceRefusal(ctx, scope, id, err)
		}
		// Indexed under its key's credential ID, so that revoking the key
		// closes the session as revoking a certificate does.
		return &session{kind: kindDevice, scope: scope, id: d.ID, serial: registry.SecretCredentialID(gatehouse.CredentialSymmetricKey, d), device: d}, nil
	case password != "":
		req.Token = password
	case len(chain) > 0:
		req.Chain = chain
	default:
		return nil, refused(packets.ErrBadUsernameOrPassword, errors.New("no password and no client certificate"))
	}
	if err := b.prov.Attest(ctx, req); err != nil {
		return nil, refused(codeFor(err), err)
	}
	return &session{kind: kindNative, scope: scope, id: id, prov: &provisioning{req: req}}, nil
}

// deviceRefusal turns a failed device authentication into its reason
// code; a state that forbids authentication is read to say which.
func (b *Broker) deviceRefusal(ctx context.Context, scope, id string, err error) *authError {
	if gatehouse.ErrorCode(err) == gatehouse.EForbidden {
		if d, derr := b.reg.DeviceByID(ctx, scope, id); derr == nil {
			return refused(stateCode(d.State), err)
		}
	}
	return refused(codeFor(err), err)
}

// admit records an authenticated session, unless enforcement struck its
// device or certificate since it began to authenticate.
func (b *Broker) admit(s *session) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.kind == kindDevice {
		if at, ok := b.kills[s.deviceKey()]; ok && !at.Before(s.authAt) {
			return false
		}
		if s.serial != "" {
			if at, ok := b.kills[s.scope+"/"+s.serial]; ok && !at.Before(s.authAt) {
				return false
			}
		}
		addIndex(b.byDevice, s.deviceKey(), s)
		if s.serial != "" {
			addIndex(b.bySerial, s.scope+"/"+s.serial, s)
		}
	}
	b.sessions[s.cl] = s
	return true
}

// forget drops a session; a device's last session marks it offline.
func (b *Broker) forget(cl *mqtt.Client) {
	b.mu.Lock()
	s, ok := b.sessions[cl]
	if !ok {
		b.mu.Unlock()
		return
	}
	delete(b.sessions, cl)
	offline := false
	if s.kind == kindDevice {
		delIndex(b.byDevice, s.deviceKey(), s)
		if s.serial != "" {
			delIndex(b.bySerial, s.scope+"/"+s.serial, s)
		}
		if s.established.Load() {
			k := s.deviceKey()
			if b.online[k]--; b.online[k] <= 0 {
				delete(b.online, k)
				offline = true
			}
		}
	}
	b.mu.Unlock()
	if offline {
		b.reg.DeviceDisconnected(s.scope, s.id, Protocol)
	}
}

// sessionIndex finds sessions by a key. A device almost always has one
// session: a slice costs a word where a set would cost a map.
type sessionIndex map[string][]*session

func addIndex(m sessionIndex, k string, s *session) { m[k] = append(m[k], s) }

func delIndex(m sessionIndex, k string, s *session) {
	set := m[k]
	for i, x := range set {
		if x == s {
			set[i] = set[len(set)-1]
			set[len(set)-1] = nil
			set = set[:len(set)-1]
			break
		}
	}
	if len(set) == 0 {
		delete(m, k)
		return
	}
	m[k] = set
}

func (b *Broker) sessionOf(cl *mqtt.Client) *session {
	b.mu.RLock()
	s := b.sessions[cl]
	b.mu.RUnlock()
	return s
}

// allowed is the topic policy: what a session may publish (write) or
// subscribe to, in the topics it sees.
func (s *session) allowed(topic string, write bool) bool {
	switch s.kind {
	case kindDevice:
		return deviceAllowed(s.topics.policy(), s.scope, s.id, topic, write)
	case kindDPS:
		if write {
			_, ok := parseDPSTopic(topic)
			return ok
		}
		return topic == dpsResFilter || strings.HasPrefix(topic, dpsResPrefix) && !strings.Contains(topic[len(dpsResPrefix):], "#") ||
			topic == "$dps/registrations/res/+/#"
	case kindNative:
		if write {
			_, ok := parseNativeRequestTopic(topic)
			return ok
		}
		if topic == nativePrefix+"+"+nativeResSuffix || topic == nativePrefix+"#" {
			return true
		}
		rid, ok := strings.CutPrefix(topic, nativePrefix)
		if !ok {
			return false
		}
		rid, ok = strings.CutSuffix(rid, nativeResSuffix)
		return ok && validRID(rid)
	}
	return false
}

// deviceAllowed is a device's topic policy: its configuration topic (to
// subscribe to; the configuration is the registry's to publish), its
// reported topic, and the scope's topic templates (by default
// devices/{deviceId}/#; wildcards only where a template has them).
func deviceAllowed(p *gatehouse.TopicPolicy, scope, id, topic string, write bool) bool {
	if rest, ok := strings.CutPrefix(topic, devicesPrefix); ok {
		if own, ok := strings.CutPrefix(rest, id); ok {
			switch own {
			case configSuffix:
				return !write
			case reportSuffix:
				return true
			}
		}
	}
	return p.Allows(scope, id, topic, !write)
}

// hook connects the broker library to Gatehouse.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "gatehouse" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnACLCheck, mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnPublish, mqtt.OnWill}, []byte{b})
}

// OnConnect authenticates: a refused client gets its reason code here
// (the library's own refusal knows only "bad user name or password").
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	b := h.b
	start := time.Now()
	// Authentication (chain verification, database reads) goes deep.
	var (
		s    *session
		aerr *authError
	)
	offStack(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		s, aerr = b.authenticate(ctx, cl, pk)
		if aerr == nil && s.kind == kindDevice {
			t, err := b.topics.get(ctx, s.scope)
			if err != nil {
				s, aerr = nil, refused(packets.ErrServerUnavailable, fmt.Errorf("read the scope's topic policy: %w", err))
				return
			}
			s.topics = t
		}
	})
	if aerr != nil {
		b.log.Info("mqtt: connect refused", "remote", cl.Net.Remote, "client_id", truncate(pk.Connect.ClientIdentifier, 64),
			"reason_code", aerr.code.Code, "err", aerr.err)
		b.refuse(cl, aerr.code)
		return aerr
	}
	s.cl, s.authAt, s.mount = cl, start, mountFor(s.kind, s.scope, s.id)
	if !b.admit(s) {
		code := packets.ErrNotAuthorized
		b.refuse(cl, code)
		return refused(code, errors.New("credential revoked or device state changed during authentication"))
	}
	releaseHandshake(cl.Net.Conn)
	// Client IDs are unique per session kind and scope, never across
	// scopes: the library keys sessions (and takeovers) by this ID.
	cl.ID = s.mount + clientIDMark + pk.Connect.ClientIdentifier
	if cl.Properties.Will.Flag == 1 {
		// A will is a publish like any other: mounted and checked.
		if s.allowed(cl.Properties.Will.TopicName, true) {
			cl.Properties.Will.TopicName = s.mount + cl.Properties.Will.TopicName
		} else {
			cl.Properties.Will = mqtt.Will{}
		}
	}
	return nil
}

// clientIDMark separates the mount from the client ID in the library's
// client key.
const clientIDMark = "\x00"

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	return h.b.sessionOf(cl) != nil
}

// OnSessionEstablished runs after CONNACK: presence, then the retained
// configuration (so it is waiting when the device subscribes).
func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	b := h.b
	s := b.sessionOf(cl)
	if s == nil || s.kind != kindDevice {
		return
	}
	b.mu.Lock()
	if _, still := b.sessions[cl]; !still {
		b.mu.Unlock()
		return
	}
	s.established.Store(true)
	b.online[s.deviceKey()]++
	b.mu.Unlock()
	offStack(func() {
		b.reg.DeviceConnected(s.scope, s.id, Protocol)
		b.publishConfig(s.scope, s.device)
	})
	s.device = nil // read again when needed: a held session keeps no copy
}

// offStack runs fn on a goroutine of its own and waits for it. The broker
// library serves each session on one goroutine for as long as it lasts; a
// goroutine's stack grows for its deepest call and, once parked at the
// depth of a read, never shrinks below four times that depth. Work that
// goes deep (database calls, chain verification, delivery through the
// topic tree) therefore runs here, so held sessions keep small stacks.
func offStack(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) { h.b.forget(cl) }

// OnWill keeps a will as it was mounted at CONNECT.
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) { return will, nil }

// OnACLCheck applies the topic policy to a mounted topic.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	b := h.b
	s := b.sessionOf(cl)
	if s == nil {
		return false
	}
	ext, ok := strings.CutPrefix(topic, s.mount)
	if ok && s.allowed(ext, write) {
		return true
	}
	b.violation(s, ext, write)
	return false
}

// violation counts a refused publish or subscription; a session that
// keeps trying is logged and closed.
func (b *Broker) violation(s *session, topic string, write bool) {
	b.violations.Add(1)
	n := s.violations.Add(1)
	action := "subscribe"
	if write {
		action = "publish"
	}
	b.log.Debug("mqtt: topic refused", "scope", s.scope, "device_id", s.id, "kind", s.kind.String(), "action", action, "topic", truncate(topic, 200))
	if int(n) == b.lim.ViolationThreshold {
		b.log.Warn("mqtt: repeated topic violations; closing the session", "scope", s.scope, "device_id", s.id,
			"kind", s.kind.String(), "violations", n, "remote", s.cl.Net.Remote)
		go b.disconnect(s, packets.ErrNotAuthorized)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := b.reg.RecordTopicViolations(ctx, s.scope, s.id, "mqtt", int(n), topic); err != nil {
				b.log.Error("mqtt: record topic violations", "scope", s.scope, "device_id", s.id, "err", err)
			}
		}()
	}
}

// OnPacketRead mounts the topics a client sends.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Publish, packets.Subscribe, packets.Unsubscribe:
	default:
		return pk, nil
	}
	s := h.b.sessionOf(cl)
	if s == nil {
		return pk, packets.ErrNotAuthorized
	}
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.Properties.TopicAliasFlag || pk.TopicName == "" {
			return pk, packets.ErrTopicAliasInvalid
		}
		pk.TopicName = s.mount + pk.TopicName
	default:
		filters := make(packets.Subscriptions, len(pk.Filters))
		for i, f := range pk.Filters {
			f.Filter = s.mount + f.Filter
			filters[i] = f
		}
		pk.Filters = filters
	}
	return pk, nil
}

// OnPacketEncode unmounts the topics a client receives, and tells MQTT 5
// clients in the CONNACK what the broker library does not: the maximum
// packet size, and that shared subscriptions and subscription identifiers
// are not offered.
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode == packets.CodeSuccess.Code {
		pk.Properties.MaximumPacketSize = h.b.lim.MaxPacketSize
		pk.Properties.SharedSubAvailable, pk.Properties.SharedSubAvailableFlag = 0, true
		pk.Properties.SubIDAvailable, pk.Properties.SubIDAvailableFlag = 0, true
		return pk
	}
	if pk.FixedHeader.Type != packets.Publish {
		return pk
	}
	if s := h.b.sessionOf(cl); s != nil {
		pk.TopicName = strings.TrimPrefix(pk.TopicName, s.mount)
	}
	return pk
}

// OnPublish handles what Gatehouse itself answers: reported properties and
// provisioning requests. Devices may not retain messages.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	b := h.b
	s := b.sessionOf(cl)
	if s == nil {
		return pk, packets.ErrRejectPacket
	}
	pk.FixedHeader.Retain = false
	topic := strings.TrimPrefix(pk.TopicName, s.mount)
	switch s.kind {
	case kindDevice:
		if topic == ReportedTopic(s.id) {
			return b.report(s, pk)
		}
		return pk, nil
	case kindDPS:
		t, ok := parseDPSTopic(topic)
		if !ok {
			return pk, packets.ErrRejectPacket
		}
		b.startRequest(s, t.rid, func(ctx context.Context) { b.handleDPS(ctx, s, t, pk.Payload) })
		return pk, packets.CodeSuccessIgnore
	case kindNative:
		rid, ok := parseNativeRequestTopic(topic)
		if !ok {
			return pk, packets.ErrRejectPacket
		}
		b.startRequest(s, rid, func(ctx context.Context) { b.handleNative(ctx, s, rid, pk.Payload) })
		return pk, packets.CodeSuccessIgnore
	}
	return pk, packets.ErrRejectPacket
}

// report stores reported properties, at most ReportsPerSecond per device
// (beyond it: PUBACK 0x97 quota exceeded, or dropped). An invalid report is answered with
// PUBACK 0x99 (MQTT 5, QoS 1), or closes the session (MQTT 5 QoS 0 with
// DISCONNECT 0x99; MQTT 3.1.1, which has no way to say why).
func (b *Broker) report(s *session, pk packets.Packet) (packets.Packet, error) {
	if ok, _ := b.reports.Allow(s.deviceKey()); !ok {
		// Dropped, not fatal: the device may report again shortly.
		// (MQTT 3.1.1 cannot say so; its PUBACK only ends the exchange.)
		if s.cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
			return pk, packets.ErrQuotaExceeded
		}
		return pk, packets.CodeSuccessIgnore
	}
	var err error
	offStack(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = b.reg.ReportProperties(ctx, s.scope, s.id, pk.Payload)
	})
	if err == nil {
		return pk, nil
	}
	code := packets.ErrPayloadFormatInvalid
	switch gatehouse.ErrorCode(err) {
	case gatehouse.EInternal, gatehouse.EUnavailable, gatehouse.ENotFound:
		b.log.Error("mqtt: store reported properties", "scope", s.scope, "device_id", s.id, "err", err)
		code = packets.ErrImplementationSpecificError
	case gatehouse.ETooLarge:
		code = packets.ErrPacketTooLarge
	}
	if s.cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
		return pk, code
	}
	go b.disconnect(s, code)
	return pk, packets.ErrRejectPacket
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
