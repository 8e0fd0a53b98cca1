package gatehouse

import "testing"

func TestValidateEndpointHost(t *testing.T) {
	for _, h := range []string{"mqtt.example.com", "mqtt.example.com:8883", "10.0.0.5", "10.0.0.5:1", "2001:db8::1", "[2001:db8::1]:8883", "hub-1"} {
		if err := ValidateEndpointHost(h); err != nil {
			t.Errorf("ValidateEndpointHost(%q) = %v, want nil", h, err)
		}
	}
	for _, h := range []string{"", "mqtt.example.com:", "mqtt.example.com:0", "mqtt.example.com:65536", "mqtt.example.com:x",
		"https://mqtt.example.com/x", "user@mqtt.example.com", "a b", "mqtt.example.com/path", "[::1]", "a:b:c"} {
		err := ValidateEndpointHost(h)
		if ErrorCode(err) != EInvalid {
			t.Errorf("ValidateEndpointHost(%q) = %v, want invalid", h, err)
		}
	}
}
