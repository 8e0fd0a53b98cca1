package deviceclient

import (
	"fmt"
	"testing"
)

// TestMailboxKeepsNewest: messages that arrive while the device is not
// reading overflow the queue by dropping the oldest, so the newest (the
// latest configuration) is always there to read.
func TestMailboxKeepsNewest(t *testing.T) {
	s := &mqttSession{msgs: make(chan mqttMessage, 16)}
	for i := 1; i <= 40; i++ {
		s.deliver(mqttMessage{topic: "devices/d/config", payload: []byte(fmt.Sprint(i))})
	}
	var got []string
	for {
		m, ok := s.queued(func(string) bool { return true })
		if !ok {
			break
		}
		got = append(got, string(m.payload))
	}
	if len(got) != 16 || got[0] != "25" || got[15] != "40" {
		t.Errorf("queued after 40 deliveries: %v; want 25 to 40", got)
	}
}
