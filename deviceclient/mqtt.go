package deviceclient

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse"
)

// answerTimeout bounds the wait for one answer over MQTT or CoAP, as
// ResponseHeaderTimeout does over HTTPS (the server gives a provisioning
// request, webhooks included, 60 s).
const answerTimeout = 65 * time.Second

// dpsMQTTAPIVersion is the DPS MQTT API version the device names in its
// user name.
const dpsMQTTAPIVersion = "2019-03-31"

// mqttSession is one MQTT 5 connection over TLS that hands the messages it
// receives to next.
type mqttSession struct {
	pc   *paho.Client
	msgs chan mqttMessage
	dead chan struct{}
}

type mqttMessage struct {
	topic   string
	payload []byte
}

// dialMQTT connects to the MQTT listener over TLS (presenting cert, if
// any), sends CONNECT as clientID and subscribes to filter. A refused CONNECT or
// SUBSCRIBE is an *Error with the status its reason code stands for.
func (c *Client) dialMQTT(ctx context.Context, addr, clientID, username, password string, cert *tls.Certificate, filter string) (*mqttSession, error) {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	dial := c.cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	raw, err := dial(cctx, "tcp", addr)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	host, _, _ := net.SplitHostPort(addr)
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.cfg.RootCAs, ServerName: host}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	conn := tls.Client(raw, tc)
	if err := conn.HandshakeContext(cctx); err != nil {
		raw.Close()
		return nil, transportError(ctx, err)
	}
	s := &mqttSession{msgs: make(chan mqttMessage, 16), dead: make(chan struct{})}
	var gone sync.Once
	s.pc = paho.NewClient(paho.ClientConfig{
		// paho writes a packet in several Writes (header, properties,
		// payload) and pings from a goroutine of its own: without the
		// lock a PINGREQ can land inside a SUBSCRIBE, which the broker
		// rightly rejects as malformed (eclipse-paho/paho.golang#90).
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			s.deliver(mqttMessage{pr.Packet.Topic, pr.Packet.Payload})
			return true, nil
		}},
		OnServerDisconnect: func(*paho.Disconnect) { gone.Do(func() { close(s.dead) }) },
		OnClientError:      func(error) { gone.Do(func() { close(s.dead) }) },
	})
	cp := &paho.Connect{ClientID: clientID, KeepAlive: 60, CleanStart: true,
		Username: username, UsernameFlag: username != ""}
	if password != "" {
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
	ack, err := s.pc.Connect(cctx, cp)
	if err != nil {
		conn.Close()
		if ack != nil && ack.ReasonCode >= 0x80 {
			msg := ""
			if ack.Properties != nil {
				msg = ack.Properties.ReasonString
			}
			return nil, mqttRefusal(ack.ReasonCode, msg)
		}
		return nil, transportError(ctx, err)
	}
	sctx, scancel := s.live(cctx)
	defer scancel()
	sa, err := s.pc.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa != nil && len(sa.Reasons) == 1 && sa.Reasons[0] >= 0x80 {
		s.close()
		return nil, mqttRefusal(sa.Reasons[0], "subscribe "+filter)
	}
	if err != nil {
		s.close()
		return nil, transportError(ctx, s.cause(err))
	}
	return s, nil
}

// deliver queues m for next. When the queue is full the oldest message
// goes: the newest is the one that counts (a device's latest
// configuration; a provisioning exchange has one answer at a time).
func (s *mqttSession) deliver(m mqttMessage) {
	for {
		select {
		case s.msgs <- m:
			return
		default:
		}
		select {
		case <-s.msgs:
		default:
		}
	}
}

// live is ctx, also ended when the connection is lost: paho leaves a
// SUBSCRIBE or PUBLISH waiting for its acknowledgement until its own
// timeout even when the connection is gone.
func (s *mqttSession) live(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.dead:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// cause is err, or that the connection was lost if it was.
func (s *mqttSession) cause(err error) error {
	select {
	case <-s.dead:
		return errConnectionLost
	default:
		return err
	}
}

var errConnectionLost = errors.New("the MQTT connection was closed before the answer came")

func (s *mqttSession) close() {
	s.pc.Disconnect(&paho.Disconnect{ReasonCode: 0})
}

// publish sends a QoS 1 message; a refused PUBLISH (PUBACK >= 0x80) is an
// *Error.
func (s *mqttSession) publish(ctx context.Context, topic string, payload []byte) error {
	tctx, cancel := context.WithTimeout(ctx, answerTimeout)
	defer cancel()
	pctx, pcancel := s.live(tctx)
	defer pcancel()
	r, err := s.pc.Publish(pctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if r != nil && r.ReasonCode >= 0x80 {
		return mqttRefusal(r.ReasonCode, "publish "+topic)
	}
	if err != nil {
		return transportError(ctx, s.cause(err))
	}
	return nil
}

// queued returns the next message already received that match accepts,
// without waiting; others on the way are dropped.
func (s *mqttSession) queued(match func(topic string) bool) (mqttMessage, bool) {
	for {
		select {
		case m := <-s.msgs:
			if match(m.topic) {
				return m, true
			}
		default:
			return mqttMessage{}, false
		}
	}
}

// next returns the next message that match accepts, waiting at most
// answerTimeout.
func (s *mqttSession) next(ctx context.Context, match func(topic string) bool) (mqttMessage, error) {
	t := time.NewTimer(answerTimeout)
	defer t.Stop()
	for {
		select {
		case m := <-s.msgs:
			if match(m.topic) {
				return m, nil
			}
		case <-s.dead:
			return mqttMessage{}, &Error{Code: "transport", Err: errConnectionLost}
		case <-t.C:
			return mqttMessage{}, &Error{Code: "transport", Err: fmt.Errorf("no answer within %v", answerTimeout)}
		case <-ctx.Done():
			return mqttMessage{}, ctx.Err()
		}
	}
}

// transportError is a failure to reach or hear the server: ctx's error if
// ctx ended, else a retryable *Error.
func transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &Error{Code: "transport", Err: err}
}

// mqttRefusal maps an MQTT 5 reason code (CONNACK, SUBACK, PUBACK) onto
// the status that classifies it.
func mqttRefusal(reason byte, msg string) *Error {
	status, code := http.StatusInternalServerError, fmt.Sprintf("mqtt_0x%02x", reason)
	switch reason {
	case 0x84: // unsupported protocol version
		status = http.StatusBadRequest
	case 0x85: // client identifier not valid
		status, code = http.StatusBadRequest, gatehouse.EInvalidID
	case 0x86: // bad user name or password
		status, code = http.StatusUnauthorized, gatehouse.EUnauthenticated
	case 0x87, 0x8A: // not authorized, banned
		status, code = http.StatusForbidden, gatehouse.EForbidden
	case 0x88, 0x89: // server unavailable, server busy
		status, code = http.StatusServiceUnavailable, gatehouse.EUnavailable
	case 0x97, 0x9F: // quota exceeded, connection rate exceeded
		status, code = http.StatusTooManyRequests, gatehouse.ERateLimited
	case 0x95, 0x99: // packet too large, payload format invalid
		status, code = http.StatusBadRequest, gatehouse.EInvalid
	}
	return &Error{Status: status, Code: code, Message: msg}
}

// dpsResponseTopic reads $dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}].
func dpsResponseTopic(topic string) (status int, rid string, retry time.Duration, ok bool) {
	rest, ok := strings.CutPrefix(topic, "$dps/registrations/res/")
	if !ok {
		return 0, "", 0, false
	}
	st, query, ok := strings.Cut(rest, "/?")
	if !ok {
		return 0, "", 0, false
	}
	status, err := strconv.Atoi(st)
	if err != nil {
		return 0, "", 0, false
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return 0, "", 0, false
	}
	if s, err := strconv.Atoi(q.Get("retry-after")); err == nil && s > 0 {
		retry = time.Duration(s) * time.Second
	}
	return status, q.Get("$rid"), retry, true
}

// registerDPSMQTT is the DPS MQTT flow: CONNECT with the registration's
// user name and a SAS token (or the factory certificate), publish the
// registration, then poll the operation, waiting as long as retry-after
// says, until it is assigned or failed.
func (c *Client) registerDPSMQTT(ctx context.Context, csrDER []byte) (*Identity, error) {
	cr := c.cfg.Credentials
	password := ""
	if cr.FactoryCertificate == nil {
		password = c.sas()
	}
	username := c.cfg.Scope + "/registrations/" + c.cfg.RegistrationID + "/api-version=" + dpsMQTTAPIVersion +
		"&ClientVersion=gatehouse-deviceclient"
	s, err := c.dialMQTT(ctx, c.cfg.MQTTAddr, c.cfg.RegistrationID, username, password, cr.FactoryCertificate, "$dps/registrations/res/#")
	if err != nil {
		return nil, err
	}
	defer s.close()

	rid := 0
	ask := func(topic string, body []byte) (int, time.Duration, []byte, error) {
		rid++
		r := strconv.Itoa(rid)
		if err := s.publish(ctx, strings.ReplaceAll(topic, "{rid}", r), body); err != nil {
			return 0, 0, nil, err
		}
		var status int
		var retry time.Duration
		m, err := s.next(ctx, func(topic string) bool {
			st, got, ra, ok := dpsResponseTopic(topic)
			if ok && got == r {
				status, retry = st, ra
			}
			return ok && got == r
		})
		if err != nil {
			return 0, 0, nil, err
		}
		if status/100 != 2 {
			return 0, 0, nil, dpsError(status, retry, m.payload)
		}
		return status, retry, m.payload, nil
	}

	body, _ := json.Marshal(map[string]any{"registrationId": c.cfg.RegistrationID, "csr": base64.StdEncoding.EncodeToString(csrDER),
		"payload": c.cfg.Payload})
	_, retry, out, err := ask("$dps/registrations/PUT/iotdps-register/?$rid={rid}", body)
	if err != nil {
		return nil, err
	}
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		var op dpsOperation
		if err := json.Unmarshal(out, &op); err != nil || op.OperationID == "" {
			return nil, &Error{Status: 200, Code: "bad_response", Message: "no operationId"}
		}
		if id, err, done := op.result(); done {
			return id, err
		}
		if retry > 0 {
			wait = retry
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		_, retry, out, err = ask("$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId="+url.QueryEscape(op.OperationID), nil)
		if err != nil {
			return nil, err
		}
	}
}

// dpsError is a DPS error answer: the status, and the body's errorCode
// and message.
func dpsError(status int, retry time.Duration, body []byte) *Error {
	e := &Error{Status: status, RetryAfter: retry, Code: "http_" + strconv.Itoa(status)}
	var p struct {
		ErrorCode int    `json:"errorCode"`
		Message   string `json:"message"`
	}
	if json.Unmarshal(body, &p) == nil && p.ErrorCode != 0 {
		e.Code, e.Message = strconv.Itoa(p.ErrorCode), p.Message
	}
	return e
}

// nativeStatus is the HTTP status the native API gives each code (as
// httpapi does); the native MQTT dialect sends only the code.
var nativeStatus = map[string]int{
	gatehouse.EInvalid: 400, gatehouse.EInvalidID: 400, gatehouse.EInvalidJSON: 400, gatehouse.EUnknownField: 400,
	gatehouse.ETooLarge: 400, gatehouse.ECSRInvalid: 400, gatehouse.EUnsupportedKey: 400, gatehouse.EInvalidPEM: 400,
	gatehouse.EAttestationFailed: 400,
	gatehouse.EUnauthenticated:   401,
	gatehouse.EForbidden:         403, gatehouse.EWebhookDenied: 403,
	gatehouse.ENotFound: 404, gatehouse.EEnrollmentNotFound: 404,
	gatehouse.EConflict: 409, gatehouse.ECredentialDenied: 409, gatehouse.EEnrollmentDisabled: 409,
	gatehouse.EEnrollmentExpired: 409, gatehouse.EQuotaExceeded: 409, gatehouse.EDeviceQuarantined: 409,
	gatehouse.EDeviceDisabled: 409, gatehouse.EReprovisionRefused: 409,
	gatehouse.ERateLimited: 429,
	gatehouse.EInternal:    500,
	gatehouse.EUnavailable: 503, gatehouse.EWebhookFailed: 503,
}

// registerNativeMQTT is the native MQTT dialect: CONNECT as
// {scope}/{registrationId} with the bootstrap token, a SAS token or the
// factory certificate; one request with the CSR, one answer with the
// certificate and the assignment.
func (c *Client) registerNativeMQTT(ctx context.Context, csrDER []byte) (*Identity, error) {
	cr := c.cfg.Credentials
	password := cr.BootstrapToken
	if cr.SymmetricKey != nil || cr.GroupKey != nil {
		password = c.sas()
	}
	s, err := c.dialMQTT(ctx, c.cfg.MQTTAddr, c.cfg.RegistrationID, c.cfg.Scope+"/"+c.cfg.RegistrationID, password, cr.FactoryCertificate, "gatehouse/provision/+/res")
	if err != nil {
		return nil, err
	}
	defer s.close()
	req := map[string]any{"csr": pemCSR(csrDER)}
	if len(c.cfg.Payload) > 0 {
		req["payload"] = c.cfg.Payload
	}
	body, _ := json.Marshal(req)
	if err := s.publish(ctx, "gatehouse/provision/1/req", body); err != nil {
		return nil, err
	}
	m, err := s.next(ctx, func(topic string) bool { return topic == "gatehouse/provision/1/res" })
	if err != nil {
		return nil, err
	}
	var r struct {
		Status      string          `json:"status"`
		DeviceID    string          `json:"deviceId"`
		AssignedHub string          `json:"assignedHub"`
		Certificate string          `json:"certificate"`
		Chain       string          `json:"chain"`
		Config      json.RawMessage `json:"config"`
		Error       *struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			RetryAfter int    `json:"retryAfter"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.payload, &r); err != nil {
		return nil, &Error{Status: 200, Code: "bad_response", Message: err.Error()}
	}
	switch {
	case r.Status == string(gatehouse.RegAssigned):
		return &Identity{DeviceID: r.DeviceID, AssignedHub: r.AssignedHub, CertificatePEM: r.Certificate, ChainPEM: r.Chain, Config: r.Config}, nil
	case r.Error != nil:
		status, ok := nativeStatus[r.Error.Code]
		if !ok {
			status = 500
		}
		return nil, &Error{Status: status, Code: r.Error.Code, Message: r.Error.Message, RetryAfter: time.Duration(r.Error.RetryAfter) * time.Second}
	}
	return nil, &Error{Status: 200, Code: "bad_response", Message: "registration status " + strconv.Quote(r.Status)}
}
