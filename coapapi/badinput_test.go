package coapapi_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"

	"github.com/gatehouse-iot/gatehouse/server"
)

func TestBadInput(t *testing.T) {
	e := startEnv(t, server.Config{})
	g := e.enroll(`{"id":"line-1","type":"group","attestation":{"type":"symmetric_key"}}`)
	cc, err := dialPSK(t, e.addr, "default/dev-1", deviceKey(t, g.Attestation.PrimaryKey, "dev-1"))
	if err != nil {
		t.Fatal(err)
	}
	if code, body, _ := do(t, cc, codes.POST, "/prov", message.AppCBOR, nil); code != codes.Changed {
		t.Fatalf("prov: %v %s", code, body)
	}
	csr, _ := newCSR(t, "x")
	for _, tc := range []struct {
		name string
		code codes.Code
		path string
		cf   message.MediaType
		body []byte
		set  func(*pool.Message)
		want codes.Code
	}{
		{"sen in CBOR", codes.POST, "/.well-known/est/sen", message.AppCBOR, csr, nil, codes.UnsupportedMediaType},
		{"sen base64", codes.POST, "/.well-known/est/sen", 286, []byte("MIIB"), nil, codes.BadRequest},
		{"sen garbage DER", codes.POST, "/.well-known/est/sen", 286, []byte{0x30, 0x03, 1, 2, 3}, nil, codes.BadRequest},
		{"rep as text", codes.POST, "/rep", message.TextPlain, []byte(`{"a":1}`), nil, codes.UnsupportedMediaType},
		{"rep bad CBOR", codes.POST, "/rep", message.AppCBOR, []byte{0xbf, 0xff, 0xff}, nil, codes.BadRequest},
		{"rep CBOR array", codes.POST, "/rep", message.AppCBOR, []byte{0x81, 0x01}, nil, codes.BadRequest},
		{"rep CBOR int keys", codes.POST, "/rep", message.AppCBOR, []byte{0xa1, 0x01, 0x02}, nil, codes.BadRequest},
		{"rep bad JSON", codes.POST, "/rep", message.AppJSON, []byte(`{"a":`), nil, codes.BadRequest},
		{"rep too large", codes.POST, "/rep", message.AppJSON, append(append([]byte(`{"a":"`), bytes.Repeat([]byte("x"), 100<<10)...), `"}`...), nil, codes.RequestEntityTooLarge},
		{"prov unknown field", codes.POST, "/prov", message.AppJSON, []byte(`{"nope":1}`), nil, codes.BadRequest},
		{"no such resource", codes.GET, "/nope", 0, nil, nil, codes.NotFound},
		{"cfg by PUT", codes.PUT, "/cfg", message.AppCBOR, []byte{0xa0}, nil, codes.MethodNotAllowed},
		{"crts in JSON", codes.GET, "/.well-known/est/crts", 0, nil, func(m *pool.Message) { m.SetAccept(message.AppJSON) }, codes.NotAcceptable},
		{"att", codes.GET, "/.well-known/est/att", 0, nil, nil, codes.NotFound},
		{"unknown critical option", codes.GET, "/cfg", 0, nil, func(m *pool.Message) { m.SetOptionBytes(2049, []byte{1}) }, codes.BadOption},
	} {
		code, body, _ := do(t, cc, tc.code, tc.path, tc.cf, tc.body, func(m *pool.Message) {
			if tc.set != nil {
				tc.set(m)
			}
		})
		if code != tc.want {
			t.Errorf("%s: %v (%s), want %v", tc.name, code, body, tc.want)
		}
		if code >= codes.BadRequest && len(body) == 0 && code != codes.RequestEntityTooLarge {
			t.Errorf("%s: no diagnostic payload", tc.name)
		}
	}

	// Garbage and an option flood inside a DTLS session: dropped or
	// refused (go-coap may end that session), and the server still serves.
	flood := []byte{0x40, 0x01, 0x12, 0x34}
	for range 2000 {
		flood = append(flood, 0x01, 'x') // Uri-Host... then delta 0 repeats
	}
	junk, err := dialPSK(t, e.addr, "default/dev-1", deviceKey(t, g.Attestation.PrimaryKey, "dev-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range [][]byte{{0xff, 0xff}, {0x40}, flood, bytes.Repeat([]byte{0x0f}, 1000)} {
		junk.NetConn().Write(raw)
	}
	if code, _, _ := do(t, cc, codes.GET, "/.well-known/core", 0, nil); code != codes.Content {
		t.Errorf("after garbage: %v", code)
	}

	// A block in the middle of a transfer that never started.
	blk := make([]byte, 3)
	binary.BigEndian.PutUint16(blk, 0)
	code, body, _ := do(t, cc, codes.POST, "/rep", message.AppJSON, []byte(`{"a":1}`), func(m *pool.Message) {
		m.SetOptionUint32(message.Block1, 5<<4|1<<3|6) // num 5, more, 1024 bytes
	})
	if code != codes.RequestEntityIncomplete && code != codes.BadRequest && code != codes.RequestEntityTooLarge {
		t.Errorf("orphan block: %v %s", code, body)
	}

	// Rate limits answer 4.29 with Max-Age.
	var got codes.Code
	var resp *pool.Message
	for range 20 {
		if got, _, resp = do(t, cc, codes.POST, "/prov", message.AppCBOR, nil); got == codes.TooManyRequests {
			break
		}
	}
	if got != codes.TooManyRequests {
		t.Fatalf("20 provisionings in a row: %v, want 4.29", got)
	}
	if age, err := resp.Options().GetUint32(message.MaxAge); err != nil || age < 1 {
		t.Errorf("4.29 Max-Age %d, %v", age, err)
	}
}

func TestPlainCoAPServesOnlyDiscovery(t *testing.T) {
	e := startEnv(t, server.Config{CoAPAddr: "127.0.0.1:0"})
	cc, err := dialUDP(e.srv.CoAPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if code, body, _ := do(t, cc, codes.GET, "/.well-known/core", 0, nil); code != codes.Content || !bytes.Contains(body, []byte("ace.est.crts")) {
		t.Errorf("discovery: %v %s", code, body)
	}
	if code, _, _ := do(t, cc, codes.GET, "/.well-known/est/crts", 0, nil); code != codes.Unauthorized {
		t.Errorf("crts over plain CoAP: %v, want 4.01", code)
	}
}
