package gatehouse_test

import (
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

func TestParseTopicPolicy(t *testing.T) {
	for _, tt := range []struct {
		templates []string
		err       string // "" when valid
	}{
		{nil, ""},
		{[]string{"devices/{deviceId}/#"}, ""},
		{[]string{"fleet/{scope}/{deviceId}/+", "devices/{deviceId}/#"}, ""},
		{[]string{"{deviceId}/#"}, "could give two devices the same topic"}, // device "devices" would own devices/x/config
		{[]string{"t/{deviceId}/up", "t/{deviceId}/down/+"}, ""},
		{[]string{"a/{deviceId}/#", "a/b/{deviceId}/#"}, "could give two devices the same topic"},
		{[]string{"x/{scope}/{deviceId}", "x/acme/{deviceId}/#"}, "could give two devices the same topic"},
		{[]string{"devices/config/{deviceId}"}, "could give two devices the same topic"},
		{[]string{"t/{deviceId}", "t/{deviceId}"}, "listed twice"},
		{[]string{""}, "must not be empty"},
		{[]string{"telemetry/#"}, "must contain {deviceId}"},
		{[]string{"t/+/{deviceId}"}, "{deviceId} must come before any wildcard"},
		{[]string{"t/#/{deviceId}"}, "'#' may only be the last level"},
		{[]string{"t/{deviceId}/a+b"}, "a wildcard must be a whole level"},
		{[]string{"t/dev-{deviceId}"}, "unknown placeholder"},
		{[]string{"t/{device}/x"}, "unknown placeholder"},
		{[]string{"t//{deviceId}"}, "level 2 is empty"},
		{[]string{"t/{deviceId}/"}, "level 3 is empty"},
		{[]string{"$SYS/{deviceId}"}, "must not start with '$'"},
		{[]string{"~p/{deviceId}/#"}, "must not start with '$' or '~'"},
		{[]string{"t/{deviceId}/a\x00b"}, "control character"},
		{[]string{"t/{deviceId}/" + strings.Repeat("x", 300)}, "longer than 256 bytes"},
		{[]string{"a/{deviceId}", "b/{deviceId}", "c/{deviceId}", "d/{deviceId}", "e/{deviceId}", "f/{deviceId}", "g/{deviceId}", "h/{deviceId}", "i/{deviceId}"}, "at most 8"},
	} {
		_, err := gatehouse.ParseTopicPolicy(tt.templates)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v, want valid", tt.templates, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || gatehouse.ErrorCode(err) != gatehouse.EInvalid):
			t.Errorf("%q: %v, want an invalid error containing %q", tt.templates, err, tt.err)
		}
	}
}

func TestTopicPolicyAllows(t *testing.T) {
	p, err := gatehouse.ParseTopicPolicy([]string{"fleet/{scope}/{deviceId}/+", "cmd/{deviceId}/#", "state/{deviceId}"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		topic  string
		filter bool
		want   bool
	}{
		{"fleet/acme/d1/temp", false, true},
		{"fleet/acme/d1/+", true, true},
		{"fleet/acme/d1/#", true, false}, // '#' would reach below the one level
		{"fleet/acme/d1/temp/x", false, false},
		{"fleet/acme/d1", false, false},
		{"fleet/other/d1/temp", false, false},
		{"fleet/acme/d2/temp", false, false},
		{"fleet/acme/+/temp", true, false},
		{"fleet/+/d1/temp", true, false},
		{"cmd/d1/reboot", false, true},
		{"cmd/d1/a/b/c", false, true},
		{"cmd/d1/#", true, true},
		{"cmd/d1/+/x", true, true},
		{"cmd/d1", false, false}, // '#' is one or more levels below
		{"cmd/d1/", false, false},
		{"cmd/#", true, false},
		{"cmd/+/reboot", true, false},
		{"state/d1", false, true},
		{"state/d1/x", false, false},
		{"state/+", true, false},
		{"devices/d1/telemetry", false, false}, // the default template is replaced
		{"fleet/acme/d1/te+mp", false, false},  // a topic name holds no wildcard
		{"#", true, false},
		{"", false, false},
	} {
		if got := p.Allows("acme", "d1", tt.topic, tt.filter); got != tt.want {
			t.Errorf("Allows(%q, filter %v) = %v, want %v", tt.topic, tt.filter, got, tt.want)
		}
	}
	if got := p.Expand("acme", "d1"); strings.Join(got, " ") != "fleet/acme/d1/+ cmd/d1/# state/d1" {
		t.Errorf("Expand = %q", got)
	}
}

// FuzzParseTopicPolicy: the parser never panics; a policy it accepts
// never gives two devices the same topic (the property templates exist
// for), and a device's expanded filters are its own.
func FuzzParseTopicPolicy(f *testing.F) {
	f.Add("devices/{deviceId}/#", "fleet/{scope}/{deviceId}/+", "fleet/acme/a/x")
	f.Add("{scope}/{deviceId}/#", "t/{deviceId}", "t/b")
	f.Add("a/{deviceId}/#", "a/b/{deviceId}/#", "a/b/a/x")
	f.Add("x/{deviceId}", "{deviceId}/x", "x/x")
	f.Fuzz(func(t *testing.T, t1, t2, topic string) {
		p, err := gatehouse.ParseTopicPolicy([]string{t1, t2})
		if err != nil {
			return
		}
		ids := []string{"a", "b", "x", "acme", "devices", "config", "t", strings.SplitN(topic, "/", 2)[0]}
		// Every level of the topic is a candidate device ID too.
		ids = append(ids, strings.Split(topic, "/")...)
		var owner string
		for _, id := range ids {
			if gatehouse.ValidateDeviceID(id) != nil {
				continue
			}
			if p.Allows("acme", id, topic, false) || builtin(id, topic) {
				if owner != "" && owner != id {
					t.Fatalf("%q and %q both own topic %q under %q", owner, id, topic, p.Templates())
				}
				owner = id
			}
		}
		for _, id := range []string{"a", "b"} {
			for _, filter := range p.Expand("acme", id) {
				if !p.Allows("acme", id, filter, true) {
					t.Fatalf("device %s may not subscribe to its own filter %q", id, filter)
				}
				other := map[string]string{"a": "b", "b": "a"}[id]
				if p.Allows("acme", other, filter, true) {
					t.Fatalf("device %s may subscribe to %s's filter %q", other, id, filter)
				}
			}
		}
	})
}

// builtin reports whether topic is one of a device's built-in topics.
func builtin(id, topic string) bool {
	return topic == "devices/"+id+"/config" || topic == "devices/"+id+"/reported"
}
