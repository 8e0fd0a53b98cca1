package mqttapi

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse"
)

// enforce applies one committed event to the live sessions: it is called
// for every event of every scope, on every node.
func (b *Broker) enforce(e *gatehouse.Event) {
	if e.Type == gatehouse.EventScopeUpdated {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.topics.reload(ctx, e.Scope)
		return
	}
	id, ok := strings.CutPrefix(e.Subject, "devices/")
	if !ok {
		return
	}
	switch e.Type {
	case gatehouse.EventCredentialRevoked:
		var d struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(e.Data, &d) == nil && d.ID != "" {
			b.kill(b.bySerial, e.Scope+"/"+d.ID, packets.ErrNotAuthorized)
		}
	case gatehouse.EventDeviceStateChanged:
		var d struct {
			To gatehouse.State `json:"to"`
		}
		if json.Unmarshal(e.Data, &d) == nil && !d.To.CanAuthenticate() {
			b.kill(b.byDevice, e.Scope+"/"+id, stateCode(d.To))
		}
	case gatehouse.EventDeviceDeleted:
		b.kill(b.byDevice, e.Scope+"/"+id, packets.ErrNotAuthorized)
		b.publish(mountFor(kindDevice, e.Scope, id)+ConfigTopic(id), nil, true) // clears the retained config
	case gatehouse.EventDeviceUpdated:
		var d struct {
			Changed []string `json:"changed"`
		}
		if json.Unmarshal(e.Data, &d) != nil {
			return
		}
		for _, c := range d.Changed {
			if c == "config" {
				b.configChanged(e.Scope, id)
				break
			}
		}
	}
}

// kill ends the sessions an index holds under key, and remembers the key
// for sessions still authenticating.
func (b *Broker) kill(index sessionIndex, key string, code packets.Code) {
	b.mu.Lock()
	b.kills[key] = time.Now()
	victims := append([]*session(nil), index[key]...)
	b.mu.Unlock()
	for _, s := range victims {
		b.log.Info("mqtt: session closed by enforcement", "scope", s.scope, "device_id", s.id, "reason_code", code.Code)
		b.disconnect(s, code)
	}
}

// configChanged publishes a device's new configuration if it has a
// session here; otherwise it gets the current one when it connects.
func (b *Broker) configChanged(scope, id string) {
	b.mu.RLock()
	_, here := b.byDevice[scope+"/"+id]
	b.mu.RUnlock()
	if !here {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := b.reg.DeviceByID(ctx, scope, id)
	if err != nil {
		if gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			b.log.Error("mqtt: read device for its configuration", "scope", scope, "device_id", id, "err", err)
		}
		return
	}
	b.publishConfig(scope, d)
}

// publishConfig retains a device's desired configuration on its config
// topic (an empty object when it has none).
func (b *Broker) publishConfig(scope string, d *gatehouse.Device) {
	if d == nil {
		return
	}
	cfg := []byte(d.Config)
	if len(cfg) == 0 || string(cfg) == "null" {
		cfg = []byte("{}")
	}
	b.publish(mountFor(kindDevice, scope, d.ID)+ConfigTopic(d.ID), cfg, true)
}
