package httpapi

import (
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// Media types of the certificate authority's answers (RFC 8555 for the
// chain, RFC 5280 for CRLs, RFC 6960 for OCSP).
const (
	mediaPEMChain     = "application/pem-certificate-chain"
	mediaCRL          = "application/pkix-crl"
	mediaPEMFile      = "application/x-pem-file"
	mediaOCSPRequest  = "application/ocsp-request"
	mediaOCSPResponse = "application/ocsp-response"
)

// maxOCSPRequest caps an OCSP request. A request for one certificate is
// about 100 bytes; a few dozen with a signature stay far below this.
const maxOCSPRequest = 16 << 10

// getCA answers with the scope's CA chain, issuing CA first through the
// root, as PEM (what openssl verify -CAfile takes), or with its description
// as JSON when the client prefers application/json.
func (h *Handler) getCA(w http.ResponseWriter, r *http.Request) error {
	info, err := h.reg.CA(r.Context(), principal(r), r.PathValue("scope"))
	if err != nil {
		return err
	}
	w.Header().Add("Vary", "Accept")
	if negotiate(r.Header.Values("Accept"), mediaPEMChain, mediaJSON) == mediaJSON {
		return writeJSON(w, http.StatusOK, info)
	}
	w.Header().Set("Content-Type", mediaPEMChain)
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(info.Chain))
	return nil
}

// importCA replaces the scope's issuing CA. The body holds a private key:
// like every body it never reaches a log line, and the answer carries only
// the certificate's description.
func (h *Handler) importCA(w http.ResponseWriter, r *http.Request) error {
	var req registry.CAImport
	if err := h.decodeBody(w, r, &req); err != nil {
		return err
	}
	info, err := h.reg.ImportCA(r.Context(), principal(r), r.PathValue("scope"), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

// crl answers with the scope's current CRL, DER by default or PEM with
// ?format=pem.
func (h *Handler) crl(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r.URL.RawQuery, "format")
	if err != nil {
		return err
	}
	format, err := single(q, "format")
	if err != nil {
		return err
	}
	if format != "" && format != "der" && format != "pem" {
		return gatehouse.Errorf(gatehouse.EInvalid, "format must be der or pem")
	}
	crl, err := h.reg.CRL(r.Context(), r.PathValue("scope"))
	if err != nil {
		return err
	}
	hdr := w.Header()
	// A CRL is public and may be cached, but briefly: a revocation remakes
	// it at once, and a cache should not hide that for long.
	if maxAge := int(time.Until(crl.NextUpdate).Seconds()); maxAge > 0 {
		hdr.Set("Cache-Control", "public, max-age="+strconv.Itoa(min(maxAge, 300)))
	}
	hdr.Set("Last-Modified", crl.ThisUpdate.UTC().Format(http.TimeFormat))
	body := crl.DER
	if format == "pem" {
		hdr.Set("Content-Type", mediaPEMFile)
		body = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl.DER})
	} else {
		hdr.Set("Content-Type", mediaCRL)
	}
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	return nil
}

// ocspPost answers an OCSP request sent as the body (RFC 6960 A.1).
func (h *Handler) ocspPost(w http.ResponseWriter, r *http.Request) error {
	if err := checkMediaType(r.Header.Get("Content-Type"), mediaOCSPRequest); err != nil {
		return err
	}
	body, err := readCapped(w, r, min(h.maxBody, maxOCSPRequest))
	if err != nil {
		return err
	}
	return h.ocsp(w, r, body)
}

// ocspGet answers an OCSP request sent in the path: the base64 of its DER,
// URL-encoded (RFC 6960 A.1). URL-safe base64, with or without padding, is
// accepted too.
func (h *Handler) ocspGet(w http.ResponseWriter, r *http.Request) error {
	enc := r.PathValue("request")
	if len(enc) > base64.StdEncoding.EncodedLen(maxOCSPRequest) {
		return gatehouse.Errorf(gatehouse.EBodyTooLarge, "the OCSP request exceeds %d bytes; POST it instead", maxOCSPRequest)
	}
	// The mux has unescaped the segment once; some clients escape twice.
	if strings.Contains(enc, "%") {
		if u, err := url.PathUnescape(enc); err == nil {
			enc = u
		}
	}
	der, err := decodeBase64(enc)
	if err != nil {
		return gatehouse.Errorf(gatehouse.EInvalid, "the OCSP request in the path is not base64; send base64(DER), URL-encoded, or POST the DER as %s", mediaOCSPRequest)
	}
	return h.ocsp(w, r, der)
}

// ocsp asks the registry and writes its answer. A malformed request still
// gets an OCSP response (malformedRequest) when the registry made one: OCSP
// clients understand that, and not a problem document.
func (h *Handler) ocsp(w http.ResponseWriter, r *http.Request, req []byte) error {
	resp, err := h.reg.OCSP(r.Context(), r.PathValue("scope"), req)
	if err != nil && len(resp) == 0 {
		return err
	}
	if code := gatehouse.ErrorCode(err); code == gatehouse.EInternal || code == gatehouse.EUnavailable {
		// The client learns only that the responder failed (internalError).
		h.log.ErrorContext(r.Context(), "OCSP request failed", "scope", r.PathValue("scope"), "code", code, "err", err)
	} else if err != nil {
		h.log.DebugContext(r.Context(), "OCSP request refused", "scope", r.PathValue("scope"), "code", code, "err", err)
	}
	w.Header().Set("Content-Type", mediaOCSPResponse)
	w.WriteHeader(http.StatusOK)
	w.Write(resp)
	return nil
}

// decodeBase64 accepts standard and URL-safe base64, padded or not.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// checkMediaType accepts exactly one media type, without parameters.
func checkMediaType(ct, want string) error {
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != want {
		return gatehouse.Errorf(gatehouse.EUnsupportedMedia, "send the request as Content-Type: %s", want)
	}
	return nil
}

// readCapped reads the body, refusing one over limit bytes.
func readCapped(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, gatehouse.Errorf(gatehouse.EBodyTooLarge, "the request body exceeds %d bytes", limit)
		}
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "could not read the request body")
	}
	return body, nil
}

// negotiate picks among offers (most preferred first) by an Accept header
// (RFC 9110 12.5.1): the offer with the highest quality wins, ties going to
// the earlier offer. With no Accept header, or none acceptable, it is the
// first offer: a client that accepts nothing we have still gets something
// it can report.
func negotiate(accept []string, offers ...string) string {
	best, bestQ := offers[0], -1.0
	if len(accept) == 0 {
		return best
	}
	for _, offer := range offers {
		q := acceptQuality(accept, offer)
		if q > bestQ && q > 0 {
			best, bestQ = offer, q
		}
	}
	return best
}

// acceptQuality is the quality the Accept header gives a media type: that of
// its most specific matching range, 0 if none matches.
func acceptQuality(accept []string, mt string) float64 {
	typ, _, _ := strings.Cut(mt, "/")
	q, specificity := 0.0, -1
	for _, hdr := range accept {
		for part := range strings.SplitSeq(hdr, ",") {
			rng, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			s := -1
			switch {
			case rng == mt:
				s = 2
			case rng == typ+"/*":
				s = 1
			case rng == "*/*":
				s = 0
			}
			if s < specificity || s < 0 {
				continue
			}
			v := 1.0
			if qs, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(qs, 64); err == nil && f >= 0 && f <= 1 {
					v = f
				}
			}
			if s > specificity {
				q, specificity = v, s
			}
		}
	}
	return q
}
