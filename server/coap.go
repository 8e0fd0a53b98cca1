package server

import (
	"context"
	"crypto/tls"
)

// startCoAP starts the CoAP listeners configured (none yet: the CoAP front
// end is being built; this file is its wiring point).
func (s *Server) startCoAP(ctx context.Context, cert tls.Certificate) error {
	return nil
}

// stopCoAP closes the CoAP listeners.
func (s *Server) stopCoAP() error { return nil }
