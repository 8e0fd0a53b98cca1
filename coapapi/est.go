package coapapi

import (
	"bytes"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/pkcs7"
	"github.com/gatehouse-iot/gatehouse/provision"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// est serves EST-coaps (RFC 9148) under /.well-known/est: op is "crts",
// "sen", "sren" or "att", optionally after an arbitrary label naming the
// scope ("/.well-known/est/{scope}/crts").
func (s *Server) est(w responseWriter, r *request, rest string) error {
	label, op := "", rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		label, op = rest[:i], rest[i+1:]
	}
	scope := s.scopeOf(r, label)
	switch op {
	case "crts":
		if r.msg.Code() != codes.GET {
			return methodNotAllowed(r, "GET")
		}
		return s.estCACerts(w, r, scope)
	case "sen", "sren":
		if r.msg.Code() != codes.POST {
			return methodNotAllowed(r, "POST")
		}
		return s.estEnroll(w, r, scope, op == "sren")
	case "att":
		if r.msg.Code() != codes.GET {
			return methodNotAllowed(r, "GET")
		}
		// Gatehouse decides what a device certificate says whatever the
		// CSR asks, so it asks for no attributes (RFC 9148 section 4.5).
		return gatehouse.Errorf(gatehouse.ENotFound, "no CSR attributes are required: the CA sets the subject (CN = device ID) and extensions")
	case "skg", "skc":
		return gatehouse.Errorf(gatehouse.ENotFound, "server-side key generation is not offered: generate the key on the device and POST a CSR to sen")
	}
	return gatehouse.Errorf(gatehouse.ENotFound, "no EST-coaps resource %q; use crts, sen, sren or att", truncate(op, 32))
}

// scopeOf is the scope a request is about: the EST label, else the scope
// of the DTLS identity (PSK identity or operational certificate), else the
// s= query (a factory certificate), else the default scope.
func (s *Server) scopeOf(r *request, label string) string {
	switch {
	case label != "":
		return label
	case r.peer.psk != nil:
		return r.peer.psk.Scope
	}
	if len(r.peer.chain) > 0 {
		if sc, _, err := ca.IdentityFromCertificate(r.peer.chain[0]); err == nil {
			return sc
		}
	}
	if q := query(r, "s"); q != "" {
		return q
	}
	return gatehouse.DefaultScope
}

// estCACerts answers crts: the scope's issuing CA through the root as a
// certs-only PKCS #7 (281), or the issuing CA alone as a certificate (287).
func (s *Server) estCACerts(w responseWriter, r *request, scope string) error {
	cf := cfPKCS7CertsOnly
	if a, ok := accept(r); ok {
		if a != cfPKCS7CertsOnly && a != cfPKIXCert {
			return notAcceptable(a)
		}
		cf = a
	}
	s.seen(r)
	chain, err := s.prov.CAChain(r.ctx, scope)
	if err != nil {
		return err
	}
	ders := make([][]byte, len(chain))
	for i, c := range chain {
		ders[i] = c.Raw
	}
	return w.SetResponse(codes.Content, cf, bytes.NewReader(certsBody(cf, ders)))
}

// certsBody is certificates (DER, the first one first) in a certificate
// Content-Format: a certs-only PKCS #7 of all of them (281), or the first
// alone (287).
func certsBody(cf message.MediaType, ders [][]byte) []byte {
	if cf == cfPKIXCert {
		return ders[0]
	}
	return pkcs7.CertsOnly(ders)
}

// estEnroll answers sen and sren: a DER PKCS #10 request in, the issued
// certificate out (2.04 Changed), as a certs-only PKCS #7 (281, the
// default) or the bare certificate (287). A device proves itself with its
// PSK or its factory certificate (sen), or with its current operational
// certificate (sren; over PSK, sren is sen again under the enrollment's
// re-provisioning policy).
func (s *Server) estEnroll(w responseWriter, r *request, scope string, renew bool) error {
	cf := cfPKCS7CertsOnly
	if a, ok := accept(r); ok {
		if a != cfPKCS7CertsOnly && a != cfPKIXCert {
			return notAcceptable(a)
		}
		cf = a
	}
	body, err := readBody(r, maxCSRBytes)
	if err != nil {
		return err
	}
	reqCF, hasCF := contentFormat(r)
	csr, err := decodeESTCSR(reqCF, hasCF, body)
	if err != nil {
		return err
	}
	var res *provision.Result
	switch {
	case r.peer.psk != nil:
		res, err = s.prov.RegisterPSK(r.ctx, *r.peer.psk, provision.Request{Dialect: "coap", Source: r.peer.source, CSR: csr, RequireCertificate: true})
	case len(r.peer.chain) > 0 && renew:
		res, err = s.prov.Reenroll(r.ctx, scope, r.peer.chain, csr, r.peer.source)
	case len(r.peer.chain) > 0:
		res, err = s.prov.Register(r.ctx, provision.Request{Scope: scope, RegistrationID: r.peer.chain[0].Subject.CommonName,
			Dialect: "coap", Source: r.peer.source, Chain: r.peer.chain, CSR: csr, RequireCertificate: true})
	default:
		return gatehouse.Errorf(gatehouse.EUnauthenticated, "no DTLS identity")
	}
	if err != nil {
		return err
	}
	if res.Certificate == nil {
		return gatehouse.Errorf(gatehouse.EInvalid, "this device's enrollment issues no certificates")
	}
	if res.Device != nil {
		s.reg.DeviceSeen(res.Device.Scope, res.Device.ID, "coap")
	}
	return w.SetResponse(codes.Changed, cf, bytes.NewReader(certsBody(cf, [][]byte{res.Certificate})))
}
