package deviceclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Content-Formats of EST-coaps (RFC 9148).
const (
	cfPKCS7CertsOnly message.MediaType = 281
	cfPKCS10         message.MediaType = 286
	cfPKIXCert       message.MediaType = 287
)

// PSK suites the device offers: CCM-8 (RFC 7252's mandatory suite) first.
var pskSuites = []piondtls.CipherSuiteID{
	piondtls.TLS_PSK_WITH_AES_128_CCM_8,
	piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
	piondtls.TLS_PSK_WITH_AES_128_CCM,
}

var certSuites = []piondtls.CipherSuiteID{
	piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
	piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
}

// pskIdentity is the device's DTLS PSK identity: {scope}/{registrationId},
// or {scope}/{enrollmentId}/{registrationId} when the device names its
// group.
func (c *Client) pskIdentity() string {
	if c.cfg.EnrollmentID != "" {
		return c.cfg.Scope + "/" + c.cfg.EnrollmentID + "/" + c.cfg.RegistrationID
	}
	return c.cfg.Scope + "/" + c.cfg.RegistrationID
}

// dialCoAP opens a DTLS 1.2 session to the CoAP listener: with cert, an
// ECDHE-ECDSA handshake presenting it; without, PSK with the device's
// (derived) key. The UDP socket is connected, so a closed port shows as a
// refused connection (ICMP) instead of a silent timeout where the network
// passes ICMP back.
func (c *Client) dialCoAP(ctx context.Context, cert *tls.Certificate) (*udpClient.Conn, error) {
	hctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	raddr, err := net.ResolveUDPAddr("udp", c.cfg.CoAPAddr)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	uc, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	host, _, _ := net.SplitHostPort(c.cfg.CoAPAddr)
	opts := []piondtls.ClientOption{piondtls.WithRootCAs(c.cfg.RootCAs), piondtls.WithServerName(host),
		piondtls.WithExtendedMasterSecret(piondtls.RequestExtendedMasterSecret)}
	if cert != nil {
		opts = append(opts, piondtls.WithCertificates(*cert), piondtls.WithCipherSuites(certSuites...))
	} else {
		key := c.deviceKey()
		opts = append(opts, piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
			piondtls.WithPSKIdentityHint([]byte(c.pskIdentity())), piondtls.WithCipherSuites(pskSuites...))
	}
	pc := &countingPacketConn{PacketConn: dtlsnet.PacketConnFromConn(uc)}
	dc, err := piondtls.ClientWithOptions(pc, raddr, opts...)
	if err != nil {
		uc.Close()
		return nil, &Error{Code: "transport", Err: err}
	}
	if err := dc.HandshakeContext(hctx); err != nil {
		dc.Close()
		uc.Close()
		return nil, handshakeError(ctx, err, pc.read.Load() > 0)
	}
	return dtls.Client(dc, options.WithBlockwise(true, blockwise.SZX1024, answerTimeout), options.WithCloseSocket()), nil
}

// countingPacketConn counts the datagrams the server sent.
type countingPacketConn struct {
	net.PacketConn
	read atomic.Int64
}

func (c *countingPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.read.Add(1)
	}
	return n, addr, err
}

// handshakeError classifies a failed DTLS handshake. A fatal alert from
// the server is its refusal (401). Over PSK a wrong key shows no alert the
// device can read (the server's is encrypted under the key it derived,
// which is not the device's): the handshake just never finishes. So a
// handshake that timed out after the server had answered (answered) is a
// refusal too, 401, and is not tried again; one the server never answered
// (nothing listens, the network is down), or whose port was refused, is a
// transport failure.
func handshakeError(ctx context.Context, err error, answered bool) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var alert interface{ IsFatalOrCloseNotify() bool }
	var cv *tls.CertificateVerificationError
	switch {
	case errors.As(err, &alert) && alert.IsFatalOrCloseNotify(),
		answered && errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &cv):
		return &Error{Status: http.StatusUnauthorized, Code: "unauthenticated",
			Message: "the server did not complete the DTLS handshake: check the PSK identity and key, or the certificate", Err: err}
	}
	if errors.As(err, &cv) {
		return &Error{Code: "transport", Err: fmt.Errorf("the server's certificate: %w", err)}
	}
	return &Error{Code: "transport", Err: err}
}

// coapDo sends one confirmable request over a new DTLS session and returns
// the payload of a 2.xx answer, or an *Error.
func (c *Client) coapDo(ctx context.Context, cc *udpClient.Conn, code codes.Code, path string, cf message.MediaType, body []byte, accept message.MediaType, query ...string) ([]byte, error) {
	rctx, cancel := context.WithTimeout(ctx, answerTimeout)
	defer cancel()
	var req *pool.Message
	var err error
	if code == codes.GET {
		req, err = cc.NewGetRequest(rctx, path)
	} else {
		req, err = cc.NewPostRequest(rctx, path, cf, bytes.NewReader(body))
	}
	if err != nil {
		return nil, &Error{Code: "transport", Err: err}
	}
	defer cc.ReleaseMessage(req)
	req.SetAccept(accept)
	for _, q := range query {
		req.AddQuery(q)
	}
	resp, err := cc.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer cc.ReleaseMessage(resp)
	out, err := resp.ReadBody()
	if err != nil {
		return nil, &Error{Code: "transport", Err: err}
	}
	rc := resp.Code()
	class, detail := int(rc>>5), int(rc&0x1f)
	if class == 2 {
		return out, nil
	}
	e := &Error{Status: class*100 + detail, Code: "coap_" + rc.String(), Message: strings.TrimSpace(string(out[:min(len(out), 200)]))}
	// The diagnostic is "code: message".
	if k, msg, ok := strings.Cut(e.Message, ": "); ok && k != "" && !strings.ContainsAny(k, " \t") {
		e.Code, e.Message = k, msg
	}
	if ma, err := resp.Options().GetUint32(message.MaxAge); err == nil && ma > 0 {
		e.RetryAfter = time.Duration(ma) * time.Second
	}
	return nil, e
}

// registerCoAP is the native CoAP dialect: POST /prov over DTLS (PSK or
// the factory certificate) with the CSR, JSON both ways.
func (c *Client) registerCoAP(ctx context.Context, csrDER []byte) (*Identity, error) {
	cert := c.cfg.Credentials.FactoryCertificate
	cc, err := c.dialCoAP(ctx, cert)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	req := map[string]any{"csr": pemCSR(csrDER)}
	if len(c.cfg.Payload) > 0 {
		req["payload"] = c.cfg.Payload
	}
	body, _ := json.Marshal(req)
	var query []string
	if cert != nil {
		query = append(query, "s="+c.cfg.Scope) // a factory certificate does not name its scope
	}
	out, err := c.coapDo(ctx, cc, codes.POST, "/prov", message.AppJSON, body, message.AppJSON, query...)
	if err != nil {
		return nil, err
	}
	var r struct {
		DeviceID     string            `json:"deviceId"`
		EnrollmentID string            `json:"enrollmentId"`
		AssignedHub  string            `json:"assignedHub"`
		Certificate  []byte            `json:"certificate"` // DER
		Chain        [][]byte          `json:"chain"`
		Config       json.RawMessage   `json:"config"`
		Tags         map[string]string `json:"tags"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, &Error{Status: 200, Code: "bad_response", Message: err.Error()}
	}
	id := &Identity{DeviceID: r.DeviceID, EnrollmentID: r.EnrollmentID, AssignedHub: r.AssignedHub, Config: r.Config, Tags: r.Tags}
	if r.Certificate != nil {
		id.CertificatePEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}))
	}
	for _, der := range r.Chain {
		id.ChainPEM += string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	return id, nil
}

// enrollESTCoAP is EST-coaps (RFC 9148): sen with the PSK or the factory
// certificate, or sren with the current certificate; the chain comes from
// crts over the same session.
func (c *Client) enrollESTCoAP(ctx context.Context, csrDER []byte, cert *tls.Certificate, op string) (*Identity, error) {
	cc, err := c.dialCoAP(ctx, cert)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	base := "/.well-known/est/" + c.cfg.Scope + "/"
	der, err := c.coapDo(ctx, cc, codes.POST, base+op, cfPKCS10, csrDER, cfPKIXCert)
	if err != nil {
		return nil, err
	}
	id := &Identity{CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
	p7, err := c.coapDo(ctx, cc, codes.GET, base+"crts", 0, nil, cfPKCS7CertsOnly)
	if err != nil {
		return nil, err
	}
	chain, err := parseCertsOnlyDER(p7)
	if err != nil {
		return nil, &Error{Status: 200, Code: "bad_response", Message: fmt.Sprintf("EST-coaps crts: %v", err)}
	}
	for _, ch := range chain {
		id.ChainPEM += string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ch.Raw}))
	}
	return id, nil
}
