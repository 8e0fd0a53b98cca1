package pkcs7_test

import (
	"bytes"
	"testing"

	"github.com/gatehouse-iot/gatehouse/pkcs7"
)

func TestCertsOnlyRoundTrip(t *testing.T) {
	for _, certs := range [][][]byte{nil, {{0x30, 0x00}}, {{0x30, 0x01, 0x01}, {0x30, 0x00}, {0x30, 0x02, 0x02, 0x00}}} {
		got, err := pkcs7.ParseCertsOnly(pkcs7.CertsOnly(certs))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(certs) {
			t.Fatalf("got %d certificates, want %d", len(got), len(certs))
		}
		for i := range got {
			if !bytes.Equal(got[i], certs[i]) {
				t.Errorf("certificate %d: got %x, want %x", i, got[i], certs[i])
			}
		}
	}
}

// FuzzCertsOnly: the writer gives back what it was given, in order, and
// does not panic whatever the bytes.
func FuzzCertsOnly(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01}, 2)
	f.Add([]byte{0x30, 0x00}, 1)
	f.Fuzz(func(t *testing.T, cert []byte, n int) {
		_ = pkcs7.CertsOnly([][]byte{cert})
		// Certificates are DER SEQUENCEs: wrap the input as one.
		if len(cert) >= 128 {
			return
		}
		c := append([]byte{0x30, byte(len(cert))}, cert...)
		n = n%4 + 1
		if n < 1 {
			n = 1
		}
		ders := make([][]byte, n)
		for i := range ders {
			ders[i] = c
		}
		got, err := pkcs7.ParseCertsOnly(pkcs7.CertsOnly(ders))
		if err != nil || len(got) != n || !bytes.Equal(got[0], c) {
			t.Fatalf("round trip: %v %d", err, len(got))
		}
	})
}
