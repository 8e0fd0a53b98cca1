package deviceclient

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/attest"
)

// Session is a provisioned device's MQTT connection to its broker (the hub
// its registration assigned, else Config.MQTTAddr; Config.HubAddr
// overrides): it receives the device's desired configuration and reports
// its properties. It is not safe for concurrent use.
type Session struct {
	s        *mqttSession
	deviceID string
}

// Connect opens an MQTT session as the device id names (what Provision
// returned), authenticated by its operational certificate if it has one,
// else by a SAS token signed with its symmetric key, and subscribes to its
// configuration, which the broker sends at once. Transport failures are
// retried as Config.Retry says; a refusal (a revoked credential, a
// disabled device) is not.
func (c *Client) Connect(ctx context.Context, id *Identity) (*Session, error) {
	if id == nil || id.DeviceID == "" || id.Scope == "" {
		return nil, errors.New("deviceclient: Connect needs a provisioned identity")
	}
	var username, password string
	var cert *tls.Certificate
	switch {
	case id.CertificatePEM != "":
		tc, err := id.TLSCertificate()
		if err != nil {
			return nil, fmt.Errorf("deviceclient: the identity's certificate: %w", err)
		}
		cert = &tc
	case c.cfg.Credentials.SymmetricKey != nil || c.cfg.Credentials.GroupKey != nil:
		// The key of the device ID, which the broker checks: the registration
		// ID's when they are one (a group's default template).
		key := c.cfg.Credentials.SymmetricKey
		if key == nil {
			key = attest.DeriveDeviceKey(c.cfg.Credentials.GroupKey, id.DeviceID)
		}
		username = id.Scope + "/" + id.DeviceID
		password = attest.NewSAS(key, id.Scope+"/devices/"+id.DeviceID, c.now().Add(time.Hour))
	default:
		return nil, errors.New("deviceclient: the identity has no certificate and the device no symmetric key to connect with")
	}
	var sess *Session
	err := c.cfg.Retry.do(ctx, c.cfg.OnRetry, func() error {
		s, err := c.dialMQTT(ctx, c.hubAddr(id), id.DeviceID, username, password, cert, configTopic(id.DeviceID))
		if err != nil {
			return err
		}
		sess = &Session{s: s, deviceID: id.DeviceID}
		return nil
	})
	return sess, err
}

func configTopic(deviceID string) string { return "devices/" + deviceID + "/config" }

// hubAddr is the broker a session connects to: Config.HubAddr, else the
// hub the device was assigned (port 8883 unless it names one), else
// Config.MQTTAddr.
func (c *Client) hubAddr(id *Identity) string {
	switch {
	case c.cfg.HubAddr != "":
		return c.cfg.HubAddr
	case id.AssignedHub != "":
		if _, _, err := net.SplitHostPort(id.AssignedHub); err == nil {
			return id.AssignedHub
		}
		return net.JoinHostPort(strings.Trim(id.AssignedHub, "[]"), "8883")
	}
	return c.cfg.MQTTAddr
}

// Config returns the device's desired configuration: the latest the
// broker has sent (at connect, then at each change) that Config has not
// returned yet, waiting for one if there is none, or, if none comes within
// ctx or the session's answer timeout, an error. Versions sent while the
// device was not reading are skipped: only the latest counts.
func (s *Session) Config(ctx context.Context) (json.RawMessage, error) {
	topic := configTopic(s.deviceID)
	isConfig := func(t string) bool { return t == topic }
	m, err := s.s.next(ctx, isConfig)
	if err != nil {
		return nil, err
	}
	for {
		newer, ok := s.s.queued(isConfig)
		if !ok {
			break
		}
		m = newer
	}
	return json.RawMessage(m.payload), nil
}

// Report sends a JSON merge patch of the device's reported properties
// (metadata such as firmware version, never telemetry) and waits for the
// broker to acknowledge that the registry stored it. patch is marshalled
// with encoding/json unless it is a json.RawMessage.
func (s *Session) Report(ctx context.Context, patch any) error {
	b, ok := patch.(json.RawMessage)
	if !ok {
		var err error
		if b, err = json.Marshal(patch); err != nil {
			return fmt.Errorf("deviceclient: reported properties: %w", err)
		}
	}
	return s.s.publish(ctx, "devices/"+s.deviceID+"/reported", b)
}

// Close disconnects: the registry marks the device offline.
func (s *Session) Close() { s.s.close() }
