package gatehouse

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestValidateEndpointHost(t *testing.T) {
	for _, h := range []string{"mqtt.example.com", "mqtt.example.com:8883", "10.0.0.5", "10.0.0.5:1", "2001:db8::1", "[2001:db8::1]:8883", "hub-1"} {
		if err := ValidateEndpointHost(h); err != nil {
			t.Errorf("ValidateEndpointHost(%q) = %v, want nil", h, err)
		}
	}
	for _, h := range []string{"", "mqtt.example.com:", "mqtt.example.com:0", "mqtt.example.com:65536", "mqtt.example.com:x",
		"https://mqtt.example.com/x", "user@mqtt.example.com", "a b", "mqtt.example.com/path", "[::1]", "a:b:c",
		"mqtt\n.example.com", "mqtt.exämple.com", "hub\x00"} {
		err := ValidateEndpointHost(h)
		if ErrorCode(err) != EInvalid {
			t.Errorf("ValidateEndpointHost(%q) = %v, want invalid", h, err)
		}
	}
}

// FuzzValidateEndpointHost: endpoint hosts come from the API and from
// import files. Whatever is accepted is a host name or address, with a
// port in range when there is one, and nothing panics.
func FuzzValidateEndpointHost(f *testing.F) {
	for _, s := range []string{"mqtt.example.com", "mqtt.example.com:8883", "[2001:db8::1]:8883", "2001:db8::1", "h:", "h:0", "https://x/y", "[::1]", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if ValidateEndpointHost(h) != nil {
			return
		}
		host := h
		if hh, port, err := net.SplitHostPort(h); err == nil {
			host = hh
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				t.Fatalf("%q accepted with port %q", h, port)
			}
		}
		if host == "" || len(h) > 253 || (strings.ContainsAny(host, "/ @?#:[]") && net.ParseIP(host) == nil) ||
			strings.ContainsFunc(h, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			t.Fatalf("%q accepted", h)
		}
	})
}
