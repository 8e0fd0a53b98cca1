package deviceclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse/dpswire"
)

// maxResponse bounds what the device reads of an answer.
const maxResponse = 1 << 20

// send runs one request and returns the body of a 2xx answer, or an *Error.
func (c *Client) send(ctx context.Context, cert *tls.Certificate, method, path string, query url.Values, header http.Header, body []byte) (int, []byte, error) {
	status, out, _, err := c.sendH(ctx, cert, method, path, query, header, body)
	return status, out, err
}

// sendH is send that also returns a 2xx answer's Retry-After (0 if none).
func (c *Client) sendH(ctx context.Context, cert *tls.Certificate, method, path string, query url.Values, header http.Header, body []byte) (int, []byte, time.Duration, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.httpClient(cert).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, 0, ctx.Err()
		}
		return 0, nil, 0, &Error{Code: "transport", Err: err}
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, nil, 0, &Error{Code: "transport", Err: err}
	}
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, out, retryAfter(resp.Header, c.now()), nil
	}
	e := &Error{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header, c.now())}
	var p struct {
		Code      string `json:"code"`
		Detail    string `json:"detail"`
		ErrorCode int    `json:"errorCode"` // DPS
		Message   string `json:"message"`   // DPS
	}
	switch {
	case json.Unmarshal(out, &p) == nil && p.Code != "":
		e.Code, e.Message = p.Code, p.Detail
	case p.ErrorCode != 0:
		e.Code, e.Message = strconv.Itoa(p.ErrorCode), p.Message
	default:
		e.Code, e.Message = "http_"+strconv.Itoa(resp.StatusCode), strings.TrimSpace(string(out[:min(len(out), 200)]))
	}
	return resp.StatusCode, nil, 0, e
}

func pemCSR(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// registerNative is POST /device/v1/{scope}/register.
func (c *Client) registerNative(ctx context.Context, csrDER []byte) (*Identity, error) {
	body, _ := json.Marshal(map[string]any{"registrationId": c.cfg.RegistrationID, "enrollmentId": c.cfg.EnrollmentID,
		"csr": pemCSR(csrDER), "payload": c.cfg.Payload})
	h := http.Header{"Content-Type": {"application/json"}}
	cr := c.cfg.Credentials
	switch {
	case cr.BootstrapToken != "":
		h.Set("Authorization", "Bootstrap "+cr.BootstrapToken)
	case cr.SymmetricKey != nil || cr.GroupKey != nil:
		h.Set("Authorization", c.sas())
	}
	_, out, err := c.send(ctx, cr.FactoryCertificate, http.MethodPost, "/device/v1/"+url.PathEscape(c.cfg.Scope)+"/register", nil, h, body)
	if err != nil {
		return nil, err
	}
	var r struct {
		DeviceID     string            `json:"deviceId"`
		EnrollmentID string            `json:"enrollmentId"`
		AssignedHub  string            `json:"assignedHub"`
		Certificate  string            `json:"certificate"`
		Chain        string            `json:"chain"`
		Config       json.RawMessage   `json:"config"`
		Tags         map[string]string `json:"tags"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, &Error{Status: 200, Code: "bad_response", Message: err.Error()}
	}
	return &Identity{DeviceID: r.DeviceID, EnrollmentID: r.EnrollmentID, AssignedHub: r.AssignedHub,
		CertificatePEM: r.Certificate, ChainPEM: r.Chain, Config: r.Config, Tags: r.Tags}, nil
}

// renewNative is POST /device/v1/{scope}/renew with the current certificate.
func (c *Client) renewNative(ctx context.Context, csrDER []byte, cur *tls.Certificate) (*Identity, error) {
	body, _ := json.Marshal(map[string]string{"csr": pemCSR(csrDER)})
	_, out, err := c.send(ctx, cur, http.MethodPost, "/device/v1/"+url.PathEscape(c.cfg.Scope)+"/renew", nil,
		http.Header{"Content-Type": {"application/json"}}, body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Certificate string `json:"certificate"`
		Chain       string `json:"chain"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, &Error{Status: 200, Code: "bad_response", Message: err.Error()}
	}
	return &Identity{CertificatePEM: r.Certificate, ChainPEM: r.Chain}, nil
}

// dpsAPIVersion is the DPS REST API version the device speaks.
const dpsAPIVersion = "2021-06-01"

// registerDPS is the DPS flow: PUT register (202 and an operation), then
// GET the operation until it is assigned.
func (c *Client) registerDPS(ctx context.Context, csrDER []byte) (*Identity, error) {
	cr := c.cfg.Credentials
	h := http.Header{"Content-Type": {"application/json"}}
	if cr.FactoryCertificate == nil {
		h.Set("Authorization", c.sas())
	}
	q := url.Values{"api-version": {dpsAPIVersion}}
	base := "/" + url.PathEscape(c.cfg.Scope) + "/registrations/" + url.PathEscape(c.cfg.RegistrationID)
	body, _ := json.Marshal(map[string]any{"registrationId": c.cfg.RegistrationID, "csr": base64.StdEncoding.EncodeToString(csrDER),
		"payload": c.cfg.Payload})
	_, out, after, err := c.sendH(ctx, cr.FactoryCertificate, http.MethodPut, base+"/register", q, h, body)
	if err != nil {
		return nil, err
	}
	var op dpsOperation
	if err := json.Unmarshal(out, &op); err != nil || op.OperationID == "" {
		return nil, &Error{Status: 202, Code: "bad_response", Message: "no operationId"}
	}
	for wait := dpsPollFirst; ; wait = min(2*wait, dpsPollMax) {
		if id, err, done := op.result(); done {
			return id, err
		}
		t := time.NewTimer(dpsPollWait(after, wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		if cr.FactoryCertificate == nil {
			h.Set("Authorization", c.sas())
		}
		_, out, after, err = c.sendH(ctx, cr.FactoryCertificate, http.MethodGet, base+"/operations/"+url.PathEscape(op.OperationID), q, h, nil)
		if err != nil {
			return nil, err
		}
		op = dpsOperation{}
		if err := json.Unmarshal(out, &op); err != nil {
			return nil, &Error{Status: 200, Code: "bad_response", Message: err.Error()}
		}
	}
}

// The DPS operation poll: the server's Retry-After when it sends one (as
// DPS and Gatehouse do with "assigning"), else a wait that starts at
// dpsPollFirst and doubles up to dpsPollMax. A Retry-After is capped at
// dpsRetryAfterMax, so a broken server cannot park the device for hours.
const (
	dpsPollFirst     = 200 * time.Millisecond
	dpsPollMax       = 2 * time.Second
	dpsRetryAfterMax = 60 * time.Second
)

// dpsPollWait is how long to wait before the next operation poll.
func dpsPollWait(retryAfter, backoff time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, dpsRetryAfterMax)
	}
	return backoff
}

// dpsOperation is a DPS registration operation's status (both DPS
// dialects), in the wire format the server writes.
type dpsOperation dpswire.OperationStatus

// result is the operation's outcome once it has one (done): the identity
// it assigned, or why it failed. A failure's status is the errorCode's
// first three digits (401002: 401), so that it is classified as the same
// refusal answered at once would be.
func (op *dpsOperation) result() (id *Identity, err error, done bool) {
	rs := op.RegistrationState
	switch {
	case rs == nil:
		return nil, nil, false
	case op.Status == "failed":
		status := rs.ErrorCode / 1000
		if status < 400 || status > 599 {
			status = 400
		}
		return nil, &Error{Status: status, Code: strconv.Itoa(rs.ErrorCode), Message: rs.ErrorMessage}, true
	case op.Status != "assigned":
		return nil, nil, false
	}
	id = &Identity{DeviceID: rs.DeviceID, AssignedHub: rs.AssignedHub}
	for i, b64 := range rs.IssuedCertificateChain {
		der, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, &Error{Status: 200, Code: "bad_response", Message: "issuedCertificateChain is not base64"}, true
		}
		p := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		if i == 0 {
			id.CertificatePEM = p
		} else {
			id.ChainPEM += p
		}
	}
	return id, nil, true
}

// enrollEST is EST simpleenroll (HTTP Basic with the bootstrap token, or
// the factory certificate) or simplereenroll (the current certificate).
func (c *Client) enrollEST(ctx context.Context, csrDER []byte, cert *tls.Certificate, op string) (*Identity, error) {
	h := http.Header{"Content-Type": {"application/pkcs10"}, "Content-Transfer-Encoding": {"base64"}}
	if op == "simpleenroll" && c.cfg.Credentials.BootstrapToken != "" {
		cert = nil
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.cfg.RegistrationID+":"+c.cfg.Credentials.BootstrapToken)))
	}
	body := []byte(base64.StdEncoding.EncodeToString(csrDER))
	_, out, err := c.send(ctx, cert, http.MethodPost, "/.well-known/est/"+url.PathEscape(c.cfg.Scope)+"/"+op, nil, h, body)
	if err != nil {
		return nil, err
	}
	certs, err := parseCertsOnly(out)
	if err != nil || len(certs) == 0 {
		return nil, &Error{Status: 200, Code: "bad_response", Message: fmt.Sprintf("EST answer: %v", err)}
	}
	id := &Identity{CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0].Raw}))}
	for _, ch := range certs[1:] {
		id.ChainPEM += string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ch.Raw}))
	}
	return id, nil
}

// parseCertsOnly reads a base64 certs-only PKCS #7 (RFC 7030 section 4.1.3),
// the device's certificate first.
func parseCertsOnly(b64 []byte) ([]*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(b64)), ""))
	if err != nil {
		return nil, err
	}
	return parseCertsOnlyDER(der)
}

// parseCertsOnlyDER reads a DER certs-only PKCS #7, the device's
// certificate (the one that is not a CA), if any, first.
func parseCertsOnlyDER(der []byte) ([]*x509.Certificate, error) {
	var ci struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		return nil, err
	}
	var sd struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		ContentInfo      asn1.RawValue
		Certificates     asn1.RawValue `asn1:"optional,tag:0"`
		CRLs             asn1.RawValue `asn1:"optional,tag:1"`
		SignerInfos      asn1.RawValue
	}
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return nil, err
	}
	if len(sd.Certificates.Bytes) == 0 {
		return nil, errors.New("no certificates")
	}
	certs, err := x509.ParseCertificates(sd.Certificates.Bytes)
	if err != nil {
		return nil, err
	}
	// Leaf first: the one that is not a CA.
	for i, ct := range certs {
		if !ct.IsCA && i != 0 {
			certs[0], certs[i] = certs[i], certs[0]
			break
		}
	}
	return certs, nil
}
