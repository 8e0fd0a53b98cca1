package provision

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"math"

	"github.com/gatehouse-iot/gatehouse"
)

// allocate picks the endpoint a device should use next: the enrollment's,
// else the node's default hub (which may be empty).
func (s *Service) allocate(ctx context.Context, e *gatehouse.Enrollment, key []byte, req Request, deviceID string) (string, json.RawMessage, error) {
	a := e.Allocation
	switch a.Policy {
	case gatehouse.AllocateCustom:
		hr := s.hookRequest("allocation", e, req, deviceID)
		for _, ep := range a.Endpoints {
			hr.Endpoints = append(hr.Endpoints, ep.Host)
		}
		var v AllocationVerdict
		if err := s.callHook(ctx, a.Webhook, key, hr, &v); err != nil {
			return "", nil, err
		}
		if v.AssignedHub == "" || len(v.AssignedHub) > 253 {
			return "", nil, webhookFailed("the allocation webhook returned no assignedHub")
		}
		if len(v.Payload) > 16<<10 || (len(v.Payload) > 0 && !json.Valid(v.Payload)) {
			return "", nil, webhookFailed("the allocation webhook returned an invalid payload")
		}
		return v.AssignedHub, v.Payload, nil
	case gatehouse.AllocateHashed:
		if hub := Rendezvous(a.Endpoints, deviceID); hub != "" {
			return hub, nil, nil
		}
	default:
		if len(a.Endpoints) > 0 {
			return a.Endpoints[0].Host, nil, nil
		}
	}
	return s.defaultHub, nil, nil
}

// Rendezvous picks an endpoint by weighted rendezvous hashing: stable for a
// device, spread by weight, and when an endpoint is added or removed only
// the devices that must move do.
func Rendezvous(eps []gatehouse.Endpoint, deviceID string) string {
	best, bestScore := "", math.Inf(-1)
	for _, ep := range eps {
		if ep.Weight <= 0 {
			continue
		}
		h := sha256.Sum256([]byte(ep.Host + "\x00" + deviceID))
		u := (float64(binary.BigEndian.Uint64(h[:8])>>11) + 0.5) / (1 << 53) // uniform in (0,1)
		score := -float64(ep.Weight) / math.Log(u)
		if score > bestScore {
			best, bestScore = ep.Host, score
		}
	}
	return best
}
