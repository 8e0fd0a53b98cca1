package coapapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/gatehouse-iot/gatehouse"
	"github.com/plgd-dev/go-coap/v3/message"
)

// Content-Formats of EST-coaps (RFC 9148 section 8.1, IANA CoAP
// Content-Formats registry).
const (
	cfPKCS7CertsOnly message.MediaType = 281 // application/pkcs7-mime; smime-type=certs-only
	cfCSRAttrs       message.MediaType = 285 // application/csrattrs
	cfPKCS10         message.MediaType = 286 // application/pkcs10
	cfPKIXCert       message.MediaType = 287 // application/pkix-cert
)

// Size limits of what a device sends: a CSR (a few hundred bytes for P-256,
// under 2 KiB for RSA 4096) and a native document (reported properties are
// capped at 32 KiB by the registry; CBOR is smaller than their JSON).
const (
	maxCSRBytes      = 8 << 10
	maxDocumentBytes = 48 << 10
	// maxMessageBytes bounds a request reassembled from Block1 blocks.
	maxMessageBytes = 64 << 10
)

var cborDecoder = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   16,
		MaxArrayElements:  4096,
		MaxMapPairs:       4096,
		IndefLength:       cbor.IndefLengthAllowed,
		TagsMd:            cbor.TagsForbidden,
		DefaultMapType:    reflect.TypeOf(map[string]any(nil)),
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		NaN:               cbor.NaNDecodeForbidden,
		Inf:               cbor.InfDecodeForbidden,
		BigIntDec:         cbor.BigIntDecodeValue,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

var cborEncoder = func() cbor.EncMode {
	em, err := cbor.EncOptions{Sort: cbor.SortCoreDeterministic}.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// documentFormat checks the Content-Format of a native request: CBOR, or
// JSON (merge-patch+json too, where a merge patch is expected). Absent, the
// payload is CBOR unless it looks like a JSON object.
func documentFormat(cf message.MediaType, hasCF bool, body []byte, mergePatch bool) (message.MediaType, error) {
	if !hasCF {
		if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
			return message.AppJSON, nil
		}
		return message.AppCBOR, nil
	}
	switch cf {
	case message.AppCBOR, message.AppJSON:
		return cf, nil
	case message.AppJSONMergePatch:
		if mergePatch {
			return message.AppJSON, nil
		}
	}
	return 0, gatehouse.Errorf(gatehouse.EUnsupportedMedia, "Content-Format %d is not accepted here; send application/cbor (60) or application/json (50)", cf)
}

// decodeDocument decodes a CBOR or JSON payload that must be a map with
// text keys, and returns it as JSON.
func decodeDocument(cf message.MediaType, body []byte) (json.RawMessage, error) {
	if len(body) > maxDocumentBytes {
		return nil, gatehouse.Errorf(gatehouse.EBodyTooLarge, "the payload is %d bytes; the limit is %d", len(body), maxDocumentBytes)
	}
	if cf == message.AppJSON {
		if !json.Valid(body) || !utf8.Valid(body) {
			return nil, gatehouse.Errorf(gatehouse.EInvalidJSON, "the payload is not valid JSON")
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil || m == nil {
			return nil, gatehouse.Errorf(gatehouse.EInvalidJSON, "the payload must be a JSON object")
		}
		return json.RawMessage(bytes.Clone(body)), nil
	}
	var m map[string]any
	if err := cborDecoder.Unmarshal(body, &m); err != nil {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "the payload is not a CBOR map with text keys (%s)", truncate(err.Error(), 120))
	}
	if m == nil {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "the payload must be a CBOR map")
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "the payload has a value JSON cannot hold")
	}
	return out, nil
}

// provisionRequest is the native provisioning request. csr is DER (a CBOR
// byte string), or PEM or base64 DER (a text string, as JSON carries it).
type provisionRequest struct {
	CSR     any `cbor:"csr,omitempty" json:"csr,omitempty"`
	Payload any `cbor:"payload,omitempty" json:"payload,omitempty"`
}

// decodeProvisionRequest decodes a native provisioning request. An empty
// payload asks for provisioning without a certificate.
func decodeProvisionRequest(cf message.MediaType, body []byte) (csr []byte, payload json.RawMessage, err error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, nil
	}
	if len(body) > maxDocumentBytes {
		return nil, nil, gatehouse.Errorf(gatehouse.EBodyTooLarge, "the payload is %d bytes; the limit is %d", len(body), maxDocumentBytes)
	}
	var req provisionRequest
	if cf == message.AppJSON {
		d := json.NewDecoder(bytes.NewReader(body))
		d.DisallowUnknownFields()
		if err := d.Decode(&req); err != nil {
			return nil, nil, gatehouse.Errorf(gatehouse.EInvalidJSON, "the payload is not a provisioning request: {\"csr\": PEM or base64 DER, \"payload\": any}")
		}
		if d.More() {
			return nil, nil, gatehouse.Errorf(gatehouse.EInvalidJSON, "trailing data after the JSON object")
		}
	} else if err := cborDecoder.Unmarshal(body, &req); err != nil {
		return nil, nil, gatehouse.Errorf(gatehouse.EInvalid, "the payload is not a provisioning request: a CBOR map {\"csr\": DER bytes, \"payload\": any} (%s)", truncate(err.Error(), 120))
	}
	switch v := req.CSR.(type) {
	case nil:
	case []byte:
		csr = v
	case string:
		if csr, err = textCSR(v); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "csr must be DER bytes, PEM or base64 DER")
	}
	if len(csr) > maxCSRBytes {
		return nil, nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "the CSR is %d bytes; the limit is %d", len(csr), maxCSRBytes)
	}
	if req.Payload != nil {
		if payload, err = json.Marshal(req.Payload); err != nil {
			return nil, nil, gatehouse.Errorf(gatehouse.EInvalid, "payload has a value JSON cannot hold")
		}
	}
	return csr, payload, nil
}

// textCSR accepts a CSR as PEM (passed on for the core to parse) or base64
// DER.
func textCSR(s string) ([]byte, error) {
	t := bytes.TrimSpace([]byte(s))
	if bytes.HasPrefix(t, []byte("-----BEGIN")) {
		return t, nil
	}
	der, err := base64Decode(t)
	if err != nil {
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "csr is neither PEM nor base64 DER")
	}
	return der, nil
}

// decodeESTCSR checks an EST-coaps enroll request: a DER PKCS #10 request
// in Content-Format 286 (an absent Content-Format is taken as 286).
func decodeESTCSR(cf message.MediaType, hasCF bool, body []byte) ([]byte, error) {
	if hasCF && cf != cfPKCS10 {
		return nil, gatehouse.Errorf(gatehouse.EUnsupportedMedia, "Content-Format %d is not accepted here; send a DER PKCS #10 request as application/pkcs10 (286)", cf)
	}
	switch {
	case len(body) == 0:
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "the payload is empty; send a DER PKCS #10 request")
	case len(body) > maxCSRBytes:
		return nil, gatehouse.Errorf(gatehouse.EBodyTooLarge, "the CSR is %d bytes; the limit is %d", len(body), maxCSRBytes)
	case body[0] != 0x30:
		return nil, gatehouse.Errorf(gatehouse.ECSRInvalid, "the payload is not DER (EST-coaps carries binary DER, not base64 or PEM)")
	}
	return body, nil
}

// encodeDocument encodes v as the client accepts: CBOR unless it asked for
// JSON.
func encodeDocument(accept message.MediaType, v any) ([]byte, message.MediaType, error) {
	if accept == message.AppJSON {
		b, err := json.Marshal(v)
		return b, message.AppJSON, err
	}
	b, err := cborEncoder.Marshal(v)
	return b, message.AppCBOR, err
}

// jsonValue turns stored JSON into a value that encodes to CBOR faithfully:
// integers stay integers.
func jsonValue(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil
	}
	return numbers(v)
}

func numbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(string(t), 10, 64); err == nil {
			return u
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, e := range t {
			t[k] = numbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = numbers(e)
		}
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
