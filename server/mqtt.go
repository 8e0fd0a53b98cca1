package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"

	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/mqttapi"
)

// mqttNode is a node's MQTT front end.
type mqttNode struct {
	broker *mqttapi.Broker
	addr   net.Addr // the MQTT-over-TLS listener's bound address
}

// startMQTT starts the MQTT listeners configured: MQTT over TLS
// (MQTTAddr), over secure WebSocket (MQTTWSAddr) and plain (MQTTTCPAddr,
// only when set). TLS asks for a client certificate without verifying it:
// the registry verifies each chain against the scope it names.
func (s *Server) startMQTT(ctx context.Context, cert tls.Certificate) error {
	cfg := s.cfg
	if cfg.MQTTAddr == "" && cfg.MQTTWSAddr == "" && cfg.MQTTTCPAddr == "" {
		return nil
	}
	if err := cfg.MQTTLimits.Validate(); err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	b := mqttapi.New(s.registry, s.provision, mqttapi.WithLogger(s.log.With("front_end", "mqtt")), mqttapi.WithLimits(cfg.MQTTLimits))
	n := &mqttNode{broker: b}
	tlsConfig := ca.ServerTLSConfig(cert)
	tlsConfig.ClientAuth = tls.RequestClientCert
	tlsConfig.NextProtos = nil
	if cfg.MQTTAddr != "" {
		addr, err := b.ListenTLS(cfg.MQTTAddr, tlsConfig)
		if err != nil {
			b.Close()
			return err
		}
		n.addr = addr
	}
	if cfg.MQTTWSAddr != "" {
		if err := b.ListenWebSocket(cfg.MQTTWSAddr, tlsConfig.Clone()); err != nil {
			b.Close()
			return fmt.Errorf("mqtt websocket: %w", err)
		}
	}
	if cfg.MQTTTCPAddr != "" {
		if _, err := b.ListenTCP(cfg.MQTTTCPAddr); err != nil {
			b.Close()
			return err
		}
	}
	if err := b.Start(ctx); err != nil {
		b.Close()
		return err
	}
	s.mqtt = n
	s.log.Info("mqtt serving", "tls", cfg.MQTTAddr, "wss", cfg.MQTTWSAddr, "tcp", cfg.MQTTTCPAddr)
	return nil
}

// stopMQTT closes the MQTT listeners and sessions.
func (s *Server) stopMQTT() error {
	n := s.mqtt
	if n == nil {
		return nil
	}
	s.mqtt = nil
	return n.broker.Close()
}

// MQTTAddr is the address the MQTT-over-TLS listener is bound to, or nil.
func (s *Server) MQTTAddr() net.Addr {
	if s.mqtt != nil {
		return s.mqtt.addr
	}
	return nil
}

// MQTTBroker returns the node's broker, or nil (for tests and metrics).
func (s *Server) MQTTBroker() *mqttapi.Broker {
	if s.mqtt != nil {
		return s.mqtt.broker
	}
	return nil
}

// mqttHookHandler answers an external broker's authentication and
// authorisation questions (EMQX 5 HTTP hooks, mosquitto-go-auth): mounted
// at /hooks/emqx/ only when Config.MQTTHookSecret is set, so that nobody
// without the secret can use it as a password oracle.
func (s *Server) mqttHookHandler() http.Handler {
	opts := []mqttapi.HookOption{mqttapi.WithHookLogger(s.log.With("front_end", "emqx_hook"))}
	if s.cfg.MQTTHookSecret != "" {
		opts = append(opts, mqttapi.WithHookSecret(s.cfg.MQTTHookSecret))
	}
	return http.StripPrefix("/hooks/emqx", mqttapi.NewHookHandler(s.registry, s.provision, opts...))
}

// MQTTHookHandler is mqttHookHandler for tests and embedders: it strips
// the /hooks/emqx prefix, so requests go to /hooks/emqx/authn and
// /hooks/emqx/authz.
func (s *Server) MQTTHookHandler() http.Handler { return s.mqttHookHandler() }
