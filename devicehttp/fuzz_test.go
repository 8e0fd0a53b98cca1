package devicehttp

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/dpswire"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// FuzzDecodeDPSBody: any body either decodes or fails with a client error
// code, never a panic or an internal error; a decoded payload is JSON.
func FuzzDecodeDPSBody(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `{"registrationId":"dev-1"}`, `{"registrationId":"dev-1","payload":{"a":1}}`,
		`{"registrationId":"dev-1","csr":"MIIBAA=="}`, `{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----"}`,
		`{"tpm":{"endorsementKey":"x"}}`, `{"payload":null,"tpm":null}`, `{"registrationId":5}`, `[1]`, `{"a":` + "\xff" + `}`,
	} {
		f.Add([]byte(s), "dev-1")
	}
	f.Fuzz(func(t *testing.T, body []byte, regID string) {
		out, err := decodeDPSBody(body, regID)
		if err != nil {
			switch code := gatehouse.ErrorCode(err); code {
			case gatehouse.EInvalidJSON, gatehouse.EInvalid, gatehouse.ECSRInvalid:
			default:
				t.Fatalf("unexpected code %q: %v", code, err)
			}
			if _, ok := dpswire.Error(gatehouse.ErrorCode(err)); !ok {
				t.Fatalf("code %q is not in the DPS table", gatehouse.ErrorCode(err))
			}
			return
		}
		if out.Payload != nil && bytes.Equal(out.Payload, []byte("null")) {
			t.Fatalf("null payload kept")
		}
	})
}

// FuzzDecodeESTBody: any body decodes to bytes or fails with csr_invalid;
// base64 of DER with any line breaks gives the DER back.
func FuzzDecodeESTBody(f *testing.F) {
	for _, s := range []string{"", "MIIB", "MIIBAA==\r\n", "-----BEGIN CERTIFICATE REQUEST-----\n", "\x30\x03\x02\x01\x01", "!!!", " \n\t"} {
		f.Add([]byte(s), uint8(64))
	}
	f.Fuzz(func(t *testing.T, body []byte, width uint8) {
		if _, err := decodeESTBody(body); err != nil && gatehouse.ErrorCode(err) != gatehouse.ECSRInvalid {
			t.Fatalf("unexpected error %v", err)
		}
		if len(body) == 0 {
			return
		}
		// Round trip: wrap the base64 of body at width columns.
		b64 := base64.StdEncoding.EncodeToString(body)
		var wrapped bytes.Buffer
		w := int(width%100) + 1
		for len(b64) > w {
			wrapped.WriteString(b64[:w] + "\r\n")
			b64 = b64[w:]
		}
		wrapped.WriteString(b64)
		got, err := decodeESTBody(wrapped.Bytes())
		if err != nil {
			t.Fatalf("decode wrapped base64: %v", err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("round trip: got %x, want %x", got, body)
		}
	})
}

// FuzzNativeRegister sends arbitrary bodies, with a valid SAS token for
// fuzz-1, through the native register route of the real stack: the answer
// is a success or a 4xx (rate limits included), never a 5xx or a panic,
// and nothing but fuzz-1 is ever created.
func FuzzNativeRegister(f *testing.F) {
	e := newEnv(f, WithMaxBodyBytes(4096))
	g := e.enroll(registry.EnrollmentCreate{ID: "fuzz-group", Type: gatehouse.EnrollmentGroup,
		Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}})
	sas := sasToken(f, deriveDeviceKey(f, g.Attestation.PrimaryKey, "fuzz-1"), "default", "fuzz-1", time.Now().Add(time.Hour), false)
	h := e.srv.Config.Handler
	for _, s := range []string{`{"registrationId":"fuzz-1"}`, `{"registrationId":"fuzz-1","payload":{"a":1}}`, `{"registrationId":"fuzz-1","csr":"x"}`,
		`{"registrationId":"other"}`, `{}`, `[]`, `{"registrationId":"fuzz-1","enrollmentId":"fuzz-group"}`, "\xff", `{"registrationId":"fuzz-1"} {}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/device/v1/default/register", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", sas)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.String())
		}
		page, err := e.reg.ListDevices(context.Background(), e.admin, gatehouse.DefaultScope, registry.DeviceQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Items {
			if d.ID != "fuzz-1" {
				t.Fatalf("device %q created", d.ID)
			}
		}
	})
}
