package coapapi

import (
	"bytes"
	"encoding/json"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/provision"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// provisionResponse is the native provisioning answer. Certificates are
// DER: CBOR byte strings, base64 in JSON.
type provisionResponse struct {
	RegistrationID string            `cbor:"registrationId" json:"registrationId"`
	DeviceID       string            `cbor:"deviceId" json:"deviceId"`
	Scope          string            `cbor:"scope" json:"scope"`
	EnrollmentID   string            `cbor:"enrollmentId,omitempty" json:"enrollmentId,omitempty"`
	Status         string            `cbor:"status" json:"status"`
	Substatus      string            `cbor:"substatus,omitempty" json:"substatus,omitempty"`
	AssignedHub    string            `cbor:"assignedHub,omitempty" json:"assignedHub,omitempty"`
	Certificate    []byte            `cbor:"certificate,omitempty" json:"certificate,omitempty"`
	Chain          [][]byte          `cbor:"chain,omitempty" json:"chain,omitempty"` // the issuing CA through the root
	Config         any               `cbor:"config,omitempty" json:"config,omitempty"`
	Tags           map[string]string `cbor:"tags,omitempty" json:"tags,omitempty"`
	Payload        any               `cbor:"payload,omitempty" json:"payload,omitempty"`
}

// provision answers POST /prov: a device proves itself with its PSK or its
// factory certificate, optionally sends a CSR and a payload for webhooks,
// and gets its assignment, configuration and certificate.
func (s *Server) provision(w responseWriter, r *request) error {
	if r.msg.Code() != codes.POST {
		return methodNotAllowed(r, "POST")
	}
	out, err := responseFormat(r)
	if err != nil {
		return err
	}
	body, err := readBody(r, maxDocumentBytes)
	if err != nil {
		return err
	}
	cf, hasCF := contentFormat(r)
	cf, err = documentFormat(cf, hasCF && len(body) > 0, body, false)
	if err != nil {
		return err
	}
	csr, payload, err := decodeProvisionRequest(cf, body)
	if err != nil {
		return err
	}
	req := provision.Request{Dialect: "coap", Source: r.peer.source, CSR: csr, Payload: payload}
	var res *provision.Result
	switch {
	case r.peer.psk != nil:
		res, err = s.prov.RegisterPSK(r.ctx, *r.peer.psk, req)
	case len(r.peer.chain) > 0:
		req.Scope, req.RegistrationID, req.Chain = s.scopeOf(r, ""), r.peer.chain[0].Subject.CommonName, r.peer.chain
		res, err = s.prov.Register(r.ctx, req)
	default:
		return gatehouse.Errorf(gatehouse.EUnauthenticated, "no DTLS identity")
	}
	if err != nil {
		return err
	}
	resp := provisionResponse{RegistrationID: res.Registration.RegistrationID, Status: string(res.Registration.Status),
		Substatus: string(res.Registration.Substatus), AssignedHub: res.AssignedHub, Certificate: res.Certificate,
		Payload: jsonValue(res.Payload)}
	if d := res.Device; d != nil {
		resp.DeviceID, resp.Scope, resp.EnrollmentID, resp.Tags, resp.Config = d.ID, d.Scope, d.Enrollment, d.Tags, jsonValue(d.Config)
		s.reg.DeviceSeen(d.Scope, d.ID, "coap")
	}
	if res.Certificate != nil {
		for _, c := range res.Chain {
			resp.Chain = append(resp.Chain, c.Raw)
		}
	}
	b, cf, err := encodeDocument(out, resp)
	if err != nil {
		return err
	}
	return w.SetResponse(codes.Changed, cf, bytes.NewReader(b))
}

// responseFormat is the format a native answer takes: CBOR, or JSON when
// the Accept option asks for it.
func responseFormat(r *request) (message.MediaType, error) {
	a, ok := accept(r)
	if !ok {
		return message.AppCBOR, nil
	}
	if a != message.AppCBOR && a != message.AppJSON {
		return 0, notAcceptable(a)
	}
	return a, nil
}

// config answers GET /cfg: the device's desired configuration; with
// Observe 0 the device also gets every change while its session lasts
// (RFC 7641), with Observe 1 it stops.
func (s *Server) config(w responseWriter, r *request) error {
	if r.msg.Code() != codes.GET {
		return methodNotAllowed(r, "GET")
	}
	out, err := responseFormat(r)
	if err != nil {
		return err
	}
	d, err := s.authenticate(r)
	if err != nil {
		return err
	}
	b, cf, err := encodeDocument(out, configValue(d.Config))
	if err != nil {
		return err
	}
	if err := w.SetResponse(codes.Content, cf, bytes.NewReader(b)); err != nil {
		return err
	}
	obs, err := r.msg.Options().Observe()
	switch {
	case err != nil:
	case obs == 0:
		if seq, ok := s.obs.add(devKey{d.Scope, d.ID}, w.Conn(), r.msg.Token(), out); ok {
			w.Message().SetObserve(seq)
		}
	case obs == 1:
		s.obs.remove(w.Conn(), r.msg.Token())
	}
	return nil
}

// configValue is a configuration as it is sent: an empty map when unset.
func configValue(raw json.RawMessage) any {
	if v := jsonValue(raw); v != nil {
		return v
	}
	return map[string]any{}
}

// reported answers POST /rep: a merge patch of the device's reported
// properties, CBOR or JSON.
func (s *Server) reported(w responseWriter, r *request) error {
	if r.msg.Code() != codes.POST && r.msg.Code() != codes.PATCH && r.msg.Code() != codes.IPATCH {
		return methodNotAllowed(r, "POST")
	}
	body, err := readBody(r, maxDocumentBytes)
	if err != nil {
		return err
	}
	cf, hasCF := contentFormat(r)
	if cf, err = documentFormat(cf, hasCF, body, true); err != nil {
		return err
	}
	patch, err := decodeDocument(cf, body)
	if err != nil {
		return err
	}
	d, err := s.authenticate(r)
	if err != nil {
		return err
	}
	if err := s.reg.ReportProperties(r.ctx, d.Scope, d.ID, patch); err != nil {
		return err
	}
	return w.SetResponse(codes.Changed, message.TextPlain, nil)
}

// authenticate returns the device a request comes from and marks it seen:
// the device its PSK identity names, or the one its operational
// certificate (checked against the scope's CA and the registry's
// credential status) belongs to. Its state must allow authentication;
// every check reads the registry, so a revocation or suspension takes
// effect at the next request.
func (s *Server) authenticate(r *request) (*gatehouse.Device, error) {
	var d *gatehouse.Device
	switch {
	case r.peer.psk != nil:
		id, err := s.prov.PSKDevice(r.ctx, *r.peer.psk)
		if err != nil {
			return nil, err
		}
		if d, err = s.reg.DeviceByID(r.ctx, r.peer.psk.Scope, id); gatehouse.ErrorCode(err) == gatehouse.ENotFound {
			return nil, gatehouse.Errorf(gatehouse.ENotFound, "device %q is not provisioned: POST %s (or /.well-known/est/sen) first", id, pathProvision)
		} else if err != nil {
			return nil, err
		}
		if !d.State.CanAuthenticate() {
			return nil, gatehouse.Errorf(gatehouse.EForbidden, "device %q is %s and may not authenticate", d.ID, d.State)
		}
		// The handshake proved the key; an operator may have revoked it
		// since (the DTLS session outlives the revocation).
		if err := s.reg.SymmetricKeyUsable(r.ctx, d); err != nil {
			return nil, err
		}
	case len(r.peer.chain) > 0:
		scope, _, err := ca.IdentityFromCertificate(r.peer.chain[0])
		if err != nil {
			return nil, gatehouse.Errorf(gatehouse.EUnauthenticated, "present an operational certificate: provision first")
		}
		if d, _, err = s.reg.AuthenticateCertificate(r.ctx, scope, r.peer.chain[0], r.peer.chain[1:]); err != nil {
			return nil, err
		}
	default:
		return nil, gatehouse.Errorf(gatehouse.EUnauthenticated, "no DTLS identity")
	}
	s.reg.DeviceSeen(d.Scope, d.ID, "coap")
	return d, nil
}

// seen marks the device behind a request that needs no authentication
// (discovery, CA certificates) as seen, if the request names one that may
// authenticate: any authenticated request counts as contact.
func (s *Server) seen(r *request) {
	if r.peer.psk == nil && len(r.peer.chain) == 0 {
		return
	}
	s.authenticate(r)
}
