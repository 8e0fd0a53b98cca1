package server

import "testing"

func TestAssignedHub(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
		err  bool
	}{
		{"zero config", Config{MQTTAddr: ":8883"}, "", false},
		{"explicit", Config{AssignedHub: "hub.example.com:1883", PublicHosts: []string{"gh.example.com"}, MQTTAddr: ":8883"}, "hub.example.com:1883", false},
		{"public host, standard port", Config{PublicHosts: []string{"gh.example.com", "10.0.0.5"}, MQTTAddr: ":8883"}, "gh.example.com", false},
		{"public host, other port", Config{PublicHosts: []string{"gh.example.com"}, MQTTAddr: "0.0.0.0:9883"}, "gh.example.com:9883", false},
		{"IPv6 public host", Config{PublicHosts: []string{"2001:db8::1"}, MQTTAddr: ":9883"}, "[2001:db8::1]:9883", false},
		{"MQTT off", Config{PublicHosts: []string{"gh.example.com"}}, "", false},
		{"bad", Config{AssignedHub: "https://hub.example.com/x"}, "", true},
	} {
		got, err := assignedHub(tt.cfg)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("%s: assignedHub = %q, %v; want %q (error: %v)", tt.name, got, err, tt.want, tt.err)
		}
	}
}
