package gatehouse

import (
	"slices"
	"strings"
	"time"
)

// State is a device's lifecycle state.
type State string

const (
	StateProvisioned    State = "provisioned"    // identity exists, never seen
	StateActive         State = "active"         // in service
	StateInactive       State = "inactive"       // suspended by an operator; may not authenticate
	StateQuarantined    State = "quarantined"    // blocked pending investigation
	StateDecommissioned State = "decommissioned" // terminal: credentials revoked, record kept for audit
)

// States lists every state in lifecycle order.
var States = []State{StateProvisioned, StateActive, StateInactive, StateQuarantined, StateDecommissioned}

// transitions is the lifecycle state machine: from -> allowed targets.
var transitions = map[State][]State{
	StateProvisioned:    {StateActive, StateInactive, StateQuarantined, StateDecommissioned},
	StateActive:         {StateInactive, StateQuarantined, StateDecommissioned},
	StateInactive:       {StateActive, StateQuarantined, StateDecommissioned},
	StateQuarantined:    {StateActive, StateInactive, StateDecommissioned},
	StateDecommissioned: {},
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// CanAuthenticate reports whether a device in state s may authenticate.
func (s State) CanAuthenticate() bool { return s == StateProvisioned || s == StateActive }

// AllowedTransitions returns the states s may move to.
func (s State) AllowedTransitions() []State { return slices.Clone(transitions[s]) }

// CheckTransition returns nil if a device may move from -> to, or an error
// with code EInvalidTransition naming the allowed targets.
func CheckTransition(from, to State) error {
	if !to.Valid() {
		return Errorf(EInvalid, "unknown state %q; states are %s", to, joinStates(States))
	}
	if slices.Contains(transitions[from], to) {
		return nil
	}
	allowed := transitions[from]
	if len(allowed) == 0 {
		return Errorf(EInvalidTransition, "a %s device cannot change state; %s is terminal", from, from)
	}
	return Errorf(EInvalidTransition, "cannot move a device from %s to %s; allowed from %s: %s", from, to, from, joinStates(allowed))
}

func joinStates(ss []State) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

// StateChange is one entry in a device's lifecycle history.
type StateChange struct {
	From   State     `json:"from"`
	To     State     `json:"to"`
	Actor  string    `json:"actor"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
}

// MaxReasonLen bounds the free-text reason of a state change.
const MaxReasonLen = 1024
