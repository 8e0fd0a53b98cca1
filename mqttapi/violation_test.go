package mqttapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/gatehouse-iot/gatehouse"
)

// TestRepeatedViolations: a device that keeps publishing outside its topic
// space is disconnected and leaves one device.topic_violation event.
func TestRepeatedViolations(t *testing.T) {
	e := newEnv(t)
	dc := e.device("default", "noisy-1", "")
	c := e.mustDial(&dc.tls, &paho.Connect{ClientID: "noisy-1"})
	// The 20th refusal closes the session; later publishes find no
	// connection, which is the point.
	for range 25 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := c.Publish(ctx, &paho.Publish{Topic: "devices/someone-else/telemetry", QoS: 1, Payload: []byte("x")})
		cancel()
		if r == nil || r.ReasonCode != 0x87 { // paho also returns an error for a refusal
			_ = err
			break
		}
	}
	eventually(t, 3*time.Second, "topic violation event", func() bool {
		evs, err := e.admin.Events(context.Background(), "default", 0, 1000)
		if err != nil {
			return false
		}
		n := 0
		for _, ev := range evs {
			if ev.Type == "device.topic_violation" && ev.Subject == gatehouse.DeviceSubject("noisy-1") {
				n++
			}
		}
		return n == 1
	})
}
