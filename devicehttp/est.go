package devicehttp

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/pkcs7"
	"github.com/gatehouse-iot/gatehouse/provision"
)

// estRealm names the realm of EST's HTTP Basic authentication.
const estRealm = `Basic realm="gatehouse-est"`

// estStatus is the EST dialect's one error table: gatehouse code to HTTP
// status. Bodies are plain text (RFC 7030 section 4.2.3). Codes missing here
// are answered 500 and logged.
var estStatus = nativeStatus // the same mapping; only the body differs

// estOpaque is the text of every 401.
const estOpaque = "authentication failed: authenticate with HTTP Basic (registration ID and bootstrap token) or a client certificate enrolled in this scope"

type est struct{}

func (est) name() string { return "est" }

func (d est) writeError(h *handler, w http.ResponseWriter, r *http.Request, err error) {
	code, msg := gatehouse.ErrorCode(err), gatehouse.ErrorMessage(err)
	status, known := estStatus[code]
	h.logFailure(r, d, code, known, err)
	if !known {
		status = http.StatusInternalServerError
	}
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", estRealm)
		msg = estOpaque
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", retryAfterSeconds(err, 1))
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfterSeconds(err, 5))
	case http.StatusInternalServerError:
		msg = "internal error; the server log has the details"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}

// estScope is the scope an EST request names: its label, or "default".
func estScope(r *http.Request) string {
	if l := r.PathValue("label"); l != "" {
		return l
	}
	return gatehouse.DefaultScope
}

// writePKCS7 answers with a certs-only PKCS #7 of certs (DER), base64.
func writePKCS7(w http.ResponseWriter, contentType string, certs [][]byte) {
	body := base64Lines(pkcs7.CertsOnly(certs))
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Content-Transfer-Encoding", "base64")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// estCACerts handles GET cacerts: the scope's issuing CA through the root.
// It needs no authentication (RFC 7030 section 4.1.1).
func (h *handler) estCACerts(w http.ResponseWriter, r *http.Request) error {
	chain, err := h.p.CAChain(r.Context(), estScope(r))
	if err != nil {
		return err
	}
	ders := make([][]byte, len(chain))
	for i, c := range chain {
		ders[i] = c.Raw
	}
	writePKCS7(w, "application/pkcs7-mime", ders)
	return nil
}

// estSimpleEnroll handles POST simpleenroll: a first certificate, for a
// device that proves itself with a bootstrap token (HTTP Basic: username
// the registration ID, password the token) or a factory certificate
// (whose CN is the registration ID) under an X.509 enrollment.
func (h *handler) estSimpleEnroll(w http.ResponseWriter, r *http.Request) error {
	req := provision.Request{Scope: estScope(r), Dialect: "est", Source: sourceOf(r)}
	if user, pass, ok := r.BasicAuth(); ok {
		if user == "" || pass == "" {
			return gatehouse.Errorf(gatehouse.EUnauthenticated, "empty user name or password")
		}
		req.RegistrationID, req.Token = user, pass
	} else if r.Header.Get("Authorization") != "" {
		return gatehouse.Errorf(gatehouse.EUnauthenticated, "unsupported Authorization scheme")
	} else if chain := peerChain(r); chain != nil {
		req.RegistrationID, req.Chain = chain[0].Subject.CommonName, chain
	} else {
		return gatehouse.Errorf(gatehouse.EUnauthenticated, "no credentials")
	}
	csr, err := h.readESTBody(w, r)
	if err != nil {
		return err
	}
	req.CSR, req.RequireCertificate = csr, true
	res, err := h.p.Register(r.Context(), req)
	if err != nil {
		return err
	}
	if res.Certificate == nil {
		return gatehouse.Errorf(gatehouse.EInvalid, "this device's enrollment issues no certificates (credentials.certificate is none); ask the operator to allow them, or register over the DPS or native API")
	}
	writePKCS7(w, "application/pkcs7-mime; smime-type=certs-only", [][]byte{res.Certificate})
	return nil
}

// estSimpleReenroll handles POST simplereenroll: the device authenticates
// with its current operational certificate and gets a new one; the old one
// is retired after the scope's renewal overlap.
func (h *handler) estSimpleReenroll(w http.ResponseWriter, r *http.Request) error {
	chain := peerChain(r)
	if chain == nil {
		return gatehouse.Errorf(gatehouse.EUnauthenticated, "present the current certificate as the TLS client certificate")
	}
	csr, err := h.readESTBody(w, r)
	if err != nil {
		return err
	}
	res, err := h.p.Reenroll(r.Context(), estScope(r), chain, csr, sourceOf(r))
	if err != nil {
		return err
	}
	writePKCS7(w, "application/pkcs7-mime; smime-type=certs-only", [][]byte{res.Certificate})
	return nil
}

// estCSRAttrs handles GET csrattrs: Gatehouse decides what a device
// certificate says whatever the CSR asks, so it asks for nothing
// (RFC 7030 section 4.5.2 allows 204).
func (h *handler) estCSRAttrs(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// readESTBody reads a simpleenroll or simplereenroll body: see decodeESTBody.
func (h *handler) readESTBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := h.readBody(w, r)
	if err != nil {
		return nil, err
	}
	return decodeESTBody(body)
}

// decodeESTBody decodes a PKCS #10 request as EST clients send it: base64
// of DER (RFC 7030; line breaks and other whitespace tolerated). Tolerated
// too: PEM (returned as is for the core to parse) and binary DER, which
// some clients send despite RFC 8951.
func decodeESTBody(body []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) == 0:
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "the body is empty; send the base64 of a DER PKCS #10 request")
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		return trimmed, nil
	}
	if der, err := decodeBase64(trimmed); err == nil {
		return der, nil
	}
	if body[0] == 0x30 && len(body) > 1 && (body[1] >= 0x80 || int(body[1]) == len(body)-2) {
		return body, nil
	}
	return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "the body is not base64; send the base64 of a DER PKCS #10 request (openssl req -outform DER | base64)")
}

// base64Lines encodes der as base64 in lines of 76 characters, as MIME
// (and so RFC 7030) writes it, but each ended by LF rather than CRLF: EST
// clients accept both, and GNU base64 -d, which users pipe curl into,
// refuses the CR.
func base64Lines(der []byte) []byte {
	s := base64.StdEncoding.EncodeToString(der)
	var out strings.Builder
	out.Grow(len(s) + len(s)/76 + 1)
	for len(s) > 76 {
		out.WriteString(s[:76])
		out.WriteString("\n")
		s = s[76:]
	}
	out.WriteString(s)
	out.WriteString("\n")
	return []byte(out.String())
}
