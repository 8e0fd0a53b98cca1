package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"

	"github.com/gatehouse-iot/gatehouse/coapapi"
)

// coapNode is a node's CoAP front end and its bound addresses.
type coapNode struct {
	srv        *coapapi.Server
	coaps, udp net.Addr
}

// coapNodes holds each running node's CoAP front end. (It lives here, not
// in Server, so that the CoAP wiring stays in this one file; a field in
// Server would do as well.)
var coapNodes sync.Map // *Server -> *coapNode

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
	coapNodes.Store(s, n)
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
	v, ok := coapNodes.LoadAndDelete(s)
	if !ok {
		return nil
	}
	return v.(*coapNode).srv.Close()
}

// CoAPSAddr returns the bound address of CoAP over DTLS, or nil.
func (s *Server) CoAPSAddr() net.Addr {
	if v, ok := coapNodes.Load(s); ok {
		return v.(*coapNode).coaps
	}
	return nil
}

// CoAPAddr returns the bound address of plain CoAP, or nil.
func (s *Server) CoAPAddr() net.Addr {
	if v, ok := coapNodes.Load(s); ok {
		return v.(*coapNode).udp
	}
	return nil
}
