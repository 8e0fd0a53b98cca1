package coapapi

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Bounds on observations: a device rarely needs more than one.
const (
	maxObserversPerDevice = 4
	maxObserversPerConn   = 8
	maxObservers          = 200_000
)

type devKey struct{ scope, id string }

// observer is one Observe registration of /cfg.
type observer struct {
	cc     *udpClient.Conn
	token  string
	format message.MediaType
	dev    devKey

	mu  sync.Mutex
	seq uint32
}

func (o *observer) next() uint32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq = (o.seq + 1) & 0xffffff // the Observe option holds 24 bits
	return o.seq
}

type connToken struct {
	cc    *udpClient.Conn
	token string
}

// observers holds the Observe registrations, by device and by session.
type observers struct {
	mu       sync.Mutex
	byDevice map[devKey][]*observer
	byConn   map[*udpClient.Conn][]*observer
	byToken  map[connToken]*observer
}

func newObservers() *observers {
	return &observers{byDevice: map[devKey][]*observer{}, byConn: map[*udpClient.Conn][]*observer{}, byToken: map[connToken]*observer{}}
}

// add registers an observation and returns the Observe value of the first
// response; false when a bound is reached: the device then gets a plain
// response, which RFC 7641 section 4.1 allows.
func (os *observers) add(k devKey, cc *udpClient.Conn, token message.Token, format message.MediaType) (uint32, bool) {
	os.mu.Lock()
	defer os.mu.Unlock()
	ct := connToken{cc, string(token)}
	if o, ok := os.byToken[ct]; ok { // a re-registration
		o.format = format
		return o.next(), true
	}
	if len(os.byToken) >= maxObservers || len(os.byDevice[k]) >= maxObserversPerDevice || len(os.byConn[cc]) >= maxObserversPerConn {
		return 0, false
	}
	o := &observer{cc: cc, token: string(token), format: format, dev: k}
	os.byToken[ct] = o
	os.byDevice[k] = append(os.byDevice[k], o)
	os.byConn[cc] = append(os.byConn[cc], o)
	return o.next(), true
}

func (os *observers) remove(cc *udpClient.Conn, token message.Token) {
	os.mu.Lock()
	defer os.mu.Unlock()
	if o, ok := os.byToken[connToken{cc, string(token)}]; ok {
		os.unlink(o)
	}
}

// unlink removes o; os.mu is held.
func (os *observers) unlink(o *observer) {
	delete(os.byToken, connToken{o.cc, o.token})
	if l := slices.DeleteFunc(os.byDevice[o.dev], func(x *observer) bool { return x == o }); len(l) > 0 {
		os.byDevice[o.dev] = l
	} else {
		delete(os.byDevice, o.dev)
	}
	if l := slices.DeleteFunc(os.byConn[o.cc], func(x *observer) bool { return x == o }); len(l) > 0 {
		os.byConn[o.cc] = l
	} else {
		delete(os.byConn, o.cc)
	}
}

func (os *observers) dropConn(cc *udpClient.Conn) {
	os.mu.Lock()
	defer os.mu.Unlock()
	for _, o := range slices.Clone(os.byConn[cc]) {
		os.unlink(o)
	}
}

// of returns a device's observers; with end, it also removes them.
func (os *observers) of(k devKey, end bool) []*observer {
	os.mu.Lock()
	defer os.mu.Unlock()
	l := slices.Clone(os.byDevice[k])
	if end {
		for _, o := range l {
			os.unlink(o)
		}
	}
	return l
}

func (os *observers) count() int {
	os.mu.Lock()
	defer os.mu.Unlock()
	return len(os.byToken)
}

// onEvent pushes configuration changes to observers, and ends the
// observations of a device that may no longer authenticate (a non-2.xx
// notification ends an observation, RFC 7641 section 3.2).
func (s *Server) onEvent(ev *gatehouse.Event) {
	id, ok := strings.CutPrefix(ev.Subject, "devices/")
	if !ok {
		return
	}
	k := devKey{ev.Scope, id}
	var data struct {
		Changed []string        `json:"changed"`
		Config  json.RawMessage `json:"config"`
		To      gatehouse.State `json:"to"`
	}
	switch ev.Type {
	case gatehouse.EventDeviceUpdated:
		if json.Unmarshal(ev.Data, &data) != nil || !slices.Contains(data.Changed, "config") {
			return
		}
		for _, o := range s.obs.of(k, false) {
			s.notify(o, codes.Content, configValue(data.Config))
		}
	case gatehouse.EventDeviceStateChanged:
		if json.Unmarshal(ev.Data, &data) != nil || data.To.CanAuthenticate() {
			return
		}
		for _, o := range s.obs.of(k, true) {
			s.notify(o, codes.Forbidden, "forbidden: the device is "+string(data.To))
		}
	case gatehouse.EventDeviceDeleted:
		for _, o := range s.obs.of(k, true) {
			s.notify(o, codes.NotFound, "not_found: the device was deleted")
		}
	case gatehouse.EventCredentialRevoked:
		// A device observing over the kind of credential revoked loses its
		// observation: a certificate ends observations over certificates,
		// its symmetric key those over PSK.
		var rev struct {
			Kind gatehouse.CredentialKind `json:"kind"`
		}
		if json.Unmarshal(ev.Data, &rev) != nil {
			return
		}
		for _, o := range s.obs.of(k, false) {
			p := peerOf(o.cc)
			if rev.Kind == gatehouse.CredentialX509 && len(p.chain) > 0 || rev.Kind == gatehouse.CredentialSymmetricKey && p.psk != nil {
				s.obs.remove(o.cc, message.Token(o.token))
				s.notify(o, codes.Unauthorized, opaqueUnauthorized)
			}
		}
	}
}

// notify sends one notification, non-confirmable: the next one, or the
// device's next registration, supersedes a lost one. v is a document, or
// the diagnostic of an error.
func (s *Server) notify(o *observer, code codes.Code, v any) {
	var body []byte
	format := o.format
	if diag, ok := v.(string); ok {
		body = []byte(diag)
	} else {
		var err error
		if body, format, err = encodeDocument(o.format, v); err != nil {
			s.log.Error("coap: encode notification", "err", err)
			return
		}
	}
	m := o.cc.AcquireMessage(o.cc.Context())
	defer o.cc.ReleaseMessage(m)
	m.SetCode(code)
	m.SetToken(message.Token(o.token))
	m.SetType(message.NonConfirmable)
	if code == codes.Content {
		m.SetObserve(o.next())
		m.SetContentFormat(format)
	}
	m.SetBody(bytes.NewReader(body))
	if err := o.cc.WriteMessage(m); err != nil {
		s.log.Debug("coap: notify", "scope", o.dev.scope, "device_id", o.dev.id, "err", err)
		s.obs.remove(o.cc, message.Token(o.token))
	}
}
