package ca

import (
	"crypto/x509"
	"net/url"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

func TestDeviceURI(t *testing.T) {
	if got, want := DeviceURI("default", "dev-1"), "urn:gatehouse:default:dev-1"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestIdentityFromCertificate(t *testing.T) {
	uris := func(ss ...string) *x509.Certificate {
		c := &x509.Certificate{}
		for _, s := range ss {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			c.URIs = append(c.URIs, u)
		}
		return c
	}
	tests := []struct {
		name      string
		cert      *x509.Certificate
		scope, id string
		ok        bool
	}{
		{"plain", uris("urn:gatehouse:default:dev-1"), "default", "dev-1", true},
		{"colons in the device id", uris("urn:gatehouse:plant-7:aa:bb:cc"), "plant-7", "aa:bb:cc", true},
		{"other URIs beside", uris("https://example.com/x", "urn:gatehouse:s1:d.1_x", "urn:other:thing"), "s1", "d.1_x", true},
		{"none", uris(), "", "", false},
		{"only other URIs", uris("https://example.com/"), "", "", false},
		{"two", uris("urn:gatehouse:a:b", "urn:gatehouse:a:c"), "", "", false},
		{"no device", uris("urn:gatehouse:default"), "", "", false},
		{"empty device", uris("urn:gatehouse:default:"), "", "", false},
		{"bad scope", uris("urn:gatehouse:-x:dev"), "", "", false},
		{"bad device", uris("urn:gatehouse:default:Dev"), "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scope, id, err := IdentityFromCertificate(tt.cert)
			if !tt.ok {
				wantCode(t, err, gatehouse.EInvalid)
				return
			}
			if err != nil || scope != tt.scope || id != tt.id {
				t.Errorf("got %q, %q, %v; want %q, %q", scope, id, err, tt.scope, tt.id)
			}
		})
	}
}
