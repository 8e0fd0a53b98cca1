package server

import (
	"context"
	"crypto/tls"
)

// startMQTT starts the MQTT listeners configured (none yet: the MQTT front
// end is being built; this file is its wiring point).
func (s *Server) startMQTT(ctx context.Context, cert tls.Certificate) error {
	return nil
}

// stopMQTT closes the MQTT listeners and sessions.
func (s *Server) stopMQTT() error { return nil }
