package coapapi

import (
	"bytes"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Native resources. Short paths: every byte counts on a constrained link.
const (
	pathProvision = "/prov" // POST: provision (CSR in; certificate, assignment, config out)
	pathConfig    = "/cfg"  // GET (Observe): desired configuration
	pathReported  = "/rep"  // POST: reported properties (a merge patch)
)

// link is one entry of the CoRE link format (RFC 6690).
type link struct {
	path, rt, ct string
	obs          bool
}

// links lists the resources for discovery: EST-coaps as RFC 9148 section 5
// names them, then the native ones.
var links = []link{
	{path: "/.well-known/est/crts", rt: "ace.est.crts", ct: "281 287"},
	{path: "/.well-known/est/sen", rt: "ace.est.sen", ct: "281 287"},
	{path: "/.well-known/est/sren", rt: "ace.est.sren", ct: "281 287"},
	{path: "/.well-known/est/att", rt: "ace.est.att", ct: "285"},
	{path: pathProvision, rt: "gatehouse.prov", ct: "60 50"},
	{path: pathConfig, rt: "gatehouse.cfg", ct: "60 50", obs: true},
	{path: pathReported, rt: "gatehouse.rep", ct: "60 50 52"},
}

func (l link) String() string {
	var b strings.Builder
	b.WriteString("<" + l.path + ">;rt=\"" + l.rt + "\"")
	if strings.Contains(l.ct, " ") {
		b.WriteString(";ct=\"" + l.ct + "\"")
	} else {
		b.WriteString(";ct=" + l.ct)
	}
	if l.obs {
		b.WriteString(";obs")
	}
	return b.String()
}

// discovery answers GET /.well-known/core, filtered by an rt= query (a
// trailing '*' matches a prefix, RFC 6690 section 4.1).
func (s *Server) discovery(w responseWriter, r *request) error {
	if r.msg.Code() != codes.GET {
		return methodNotAllowed(r, "GET")
	}
	if a, ok := accept(r); ok && a != message.AppLinkFormat {
		return notAcceptable(a)
	}
	s.seen(r)
	rt := query(r, "rt")
	var out []string
	for _, l := range links {
		if rt != "" && !matchesRT(rt, l.rt) {
			continue
		}
		out = append(out, l.String())
	}
	return w.SetResponse(codes.Content, message.AppLinkFormat, bytes.NewReader([]byte(strings.Join(out, ","))))
}

func matchesRT(pattern, rt string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(rt, p)
	}
	return pattern == rt
}

func notAcceptable(a message.MediaType) error {
	return gatehouse.Errorf(eNotAcceptable, "this resource cannot answer in Content-Format %d", a)
}
