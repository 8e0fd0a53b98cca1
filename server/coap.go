package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/gatehouse-iot/gatehouse/coapapi"
)

// coapNode is a node's CoAP front end and its bound addresses.
type coapNode struct {
	srv        *coapapi.Server
	coaps, udp net.Addr
}

// startCoAP starts the CoAP listeners configured: CoAP over DTLS on
// CoAPSAddr (pre-shared keys and certificates, the HTTPS certificate as
// the server's), plain CoAP on CoAPAddr (discovery only). "off" or empty
// disables one.
func (s *Server) startCoAP(ctx context.Context, cert tls.Certificate) error {
	coaps, plain := listenAddr(s.cfg.CoAPSAddr), listenAddr(s.cfg.CoAPAddr)
	if coaps == "" && plain == "" {
		return nil
	}
	n := &coapNode{srv: coapapi.New(s.provision, s.registry, coapapi.WithLogger(s.log))}
	s.coap = n
	var err error
	if coaps != "" {
		if n.coaps, err = n.srv.ListenDTLS(coaps, cert); err != nil {
			return fmt.Errorf("listen on %s (udp): %w", coaps, err)
		}
		s.log.Info("coap over dtls serving", "addr", n.coaps.String())
	}
	if plain != "" {
		if n.udp, err = n.srv.ListenUDP(plain); err != nil {
			return fmt.Errorf("listen on %s (udp): %w", plain, err)
		}
		s.log.Info("plain coap serving discovery", "addr", n.udp.String())
	}
	return nil
}

func listenAddr(a string) string {
	if a == "off" {
		return ""
	}
	return a
}

// stopCoAP closes the CoAP listeners and sessions.
func (s *Server) stopCoAP() error {
	n := s.coap
	if n == nil {
		return nil
	}
	s.coap = nil
	return n.srv.Close()
}

// CoAPSAddr returns the bound address of CoAP over DTLS, or nil.
func (s *Server) CoAPSAddr() net.Addr {
	if s.coap != nil {
		return s.coap.coaps
	}
	return nil
}

// CoAPAddr returns the bound address of plain CoAP, or nil.
func (s *Server) CoAPAddr() net.Addr {
	if s.coap != nil {
		return s.coap.udp
	}
	return nil
}
