package coapapi

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
)

func FuzzDecodeDocument(f *testing.F) {
	f.Add([]byte{0xa1, 0x62, 'f', 'w', 0x63, '1', '.', '2'}, true)
	f.Add([]byte(`{"a":[1,2,{"b":null}]}`), false)
	f.Add([]byte{0xbf, 0xff}, true)
	f.Add([]byte{0xa1, 0x01, 0x02}, true)
	f.Fuzz(func(t *testing.T, body []byte, isCBOR bool) {
		cf := message.AppJSON
		if isCBOR {
			cf = message.AppCBOR
		}
		out, err := decodeDocument(cf, body)
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(out, &m) != nil || m == nil {
			t.Fatalf("decodeDocument(%x) = %s: not a JSON object", body, out)
		}
	})
}

func FuzzDecodeProvisionRequest(f *testing.F) {
	f.Add([]byte{0xa1, 0x63, 'c', 's', 'r', 0x42, 0x30, 0x00}, true)
	f.Add([]byte(`{"csr":"-----BEGIN CERTIFICATE REQUEST-----","payload":{"a":1}}`), false)
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, body []byte, isCBOR bool) {
		cf := message.AppJSON
		if isCBOR {
			cf = message.AppCBOR
		}
		csr, payload, err := decodeProvisionRequest(cf, body)
		if err != nil {
			return
		}
		if len(csr) > maxCSRBytes {
			t.Fatalf("CSR of %d bytes accepted", len(csr))
		}
		if payload != nil && !json.Valid(payload) {
			t.Fatalf("payload %q is not JSON", payload)
		}
	})
}

func FuzzDecodeESTCSR(f *testing.F) {
	f.Add([]byte{0x30, 0x82, 0x01, 0x00}, uint16(286), true)
	f.Add([]byte("MIIB"), uint16(286), false)
	f.Fuzz(func(t *testing.T, body []byte, cf uint16, hasCF bool) {
		csr, err := decodeESTCSR(message.MediaType(cf), hasCF, body)
		if err != nil {
			return
		}
		if !bytes.Equal(csr, body) || len(csr) == 0 || csr[0] != 0x30 || (hasCF && cf != 286) {
			t.Fatalf("accepted %x (cf %d %v)", body, cf, hasCF)
		}
	})
}
