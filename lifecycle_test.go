package gatehouse

import (
	"strings"
	"testing"
)

func TestCheckTransition(t *testing.T) {
	allowed := map[[2]State]bool{
		{StateProvisioned, StateActive}: true, {StateProvisioned, StateInactive}: true,
		{StateProvisioned, StateQuarantined}: true, {StateProvisioned, StateDecommissioned}: true,
		{StateActive, StateInactive}: true, {StateActive, StateQuarantined}: true, {StateActive, StateDecommissioned}: true,
		{StateInactive, StateActive}: true, {StateInactive, StateQuarantined}: true, {StateInactive, StateDecommissioned}: true,
		{StateQuarantined, StateActive}: true, {StateQuarantined, StateInactive}: true, {StateQuarantined, StateDecommissioned}: true,
	}
	for _, from := range States {
		for _, to := range States {
			err := CheckTransition(from, to)
			if want := allowed[[2]State{from, to}]; want != (err == nil) {
				t.Errorf("%s -> %s: got err %v, want allowed=%v", from, to, err, want)
			}
			if err != nil && ErrorCode(err) != EInvalidTransition {
				t.Errorf("%s -> %s: got code %q, want %q", from, to, ErrorCode(err), EInvalidTransition)
			}
		}
	}
	err := CheckTransition(StateActive, StateProvisioned)
	for _, s := range []string{"inactive", "quarantined", "decommissioned"} {
		if !strings.Contains(ErrorMessage(err), s) {
			t.Errorf("message %q does not name allowed target %s", ErrorMessage(err), s)
		}
	}
	if got := ErrorCode(CheckTransition(StateActive, "bogus")); got != EInvalid {
		t.Errorf("unknown target: got %q, want %q", got, EInvalid)
	}
}

func TestStateCanAuthenticate(t *testing.T) {
	for _, s := range States {
		want := s == StateProvisioned || s == StateActive
		if got := s.CanAuthenticate(); got != want {
			t.Errorf("%s.CanAuthenticate() = %v, want %v", s, got, want)
		}
	}
}
