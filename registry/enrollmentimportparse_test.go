package registry_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// FuzzEnrollmentReader feeds the enrollment import parser arbitrary files,
// as CSV and as NDJSON: it must never panic or loop, must number rows
// forward, must refuse only with a client error code, and must never echo
// a secret cell (primaryKey, secondaryKey, token) in a message, however
// the rest of the row is broken.
func FuzzEnrollmentReader(f *testing.F) {
	for _, s := range []struct{ file, secret string }{
		{"id,attestation,primaryKey\nr-1,symmetric_key,c2VjcmV0c2VjcmV0c2VjcmV0\n", "c2VjcmV0c2VjcmV0c2VjcmV0"},
		{"id,attestation,token,tokenMaxUses,enabled\nr-1,token,tok-abcdefgh,x,maybe\n", "tok-abcdefgh"},
		{"id,certificate\nr-1,\"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\"\n", "AAAA-secret"},
		{"id,tags.site,config,endpoints\nr,\"a\"\"b\",{,h=x;;\nr2,\"open", "s3cr3t-value"},
		{`{"id":"r","attestation":{"type":"token","token":"tok-abcdefgh","maxUses":"x"}}` + "\n{\"id\":1}\n", "tok-abcdefgh"},
		{"\uFEFFid,primaryKey\n\xff,\xfe\n", "\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe"},
	} {
		f.Add([]byte(s.file), s.secret)
	}
	f.Fuzz(func(t *testing.T, file []byte, secret string) {
		for _, format := range []registry.ImportFormat{registry.ImportCSV, registry.ImportNDJSON} {
			readAll(t, format, file, "")
		}
		// The secret in every secret column of an otherwise broken row.
		if len(secret) < 8 || strings.ContainsAny(secret, "\r\n") {
			return
		}
		secret = "\x01" + secret // no message text holds it by chance
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		w.Write([]string{"id", "primaryKey", "secondaryKey", "token", "enabled", "tokenMaxUses", "expiresAt", "endpoints", "config"})
		w.Write([]string{"r-1", secret, secret, secret, "perhaps", "many", "soon", "h=w", "{"})
		w.Write([]string{secret, secret, secret, secret, "", "", "", "", ""}) // a key where the ID goes
		w.Write([]string{"r-3", secret})                                      // too few fields
		w.Flush()
		readAll(t, registry.ImportCSV, b.Bytes(), secret)
	})
}

func readAll(t *testing.T, format registry.ImportFormat, file []byte, secret string) {
	t.Helper()
	rd, err := registry.NewEnrollmentReader(bytes.NewReader(file), format)
	if err != nil {
		checkRefusal(t, err, secret)
		return
	}
	last := 0
	for n := 0; ; n++ {
		if n > len(file)+2 {
			t.Fatalf("%s: more records than bytes", format)
		}
		rec, err := rd.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			checkRefusal(t, err, secret)
			return
		}
		if rec.Row <= last {
			t.Fatalf("%s: row %d after row %d", format, rec.Row, last)
		}
		last = rec.Row
		if rec.Err != nil {
			checkRefusal(t, rec.Err, secret)
			continue
		}
		if !utf8.ValidString(rec.ID) {
			t.Fatalf("%s: row %d accepted an ID that is not UTF-8", format, rec.Row)
		}
	}
}

func checkRefusal(t *testing.T, err error, secret string) {
	t.Helper()
	var ge *gatehouse.Error
	if !errors.As(err, &ge) {
		t.Fatalf("refusal %v is not a gatehouse error", err)
	}
	switch gatehouse.ErrorCode(err) {
	case gatehouse.EInternal, gatehouse.EUnavailable:
		t.Fatalf("refusal with a server error code: %v", err)
	}
	if secret != "" && strings.Contains(gatehouse.ErrorMessage(err), secret) {
		t.Fatalf("a message echoes a secret cell: %q", gatehouse.ErrorMessage(err))
	}
}
