package adminclient

import (
	"context"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func scopePath(scope string) string { return "/v1/scopes/" + seg(scope) }

// CAChainPEM returns the scope's CA chain in PEM, the issuing CA first
// through the root: what openssl verify -CAfile, or a broker's trust store,
// needs to check the scope's device certificates.
func (c *Client) CAChainPEM(ctx context.Context, scope string) ([]byte, error) {
	return c.raw(ctx, request{method: http.MethodGet, path: scopePath(scope) + "/ca",
		header: http.Header{"Accept": {"application/pem-certificate-chain"}}})
}

// CAInfo describes the scope's issuing CA (its chain included).
func (c *Client) CAInfo(ctx context.Context, scope string) (*registry.CAInfo, error) {
	var info registry.CAInfo
	if err := c.do(ctx, request{method: http.MethodGet, path: scopePath(scope) + "/ca"}, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// ImportCA replaces the scope's issuing CA with the operator's own (an
// admin token is needed). Certificates of the previous CA stop verifying in
// the scope.
func (c *Client) ImportCA(ctx context.Context, scope string, req registry.CAImport) (*registry.CAInfo, error) {
	var info registry.CAInfo
	if err := c.do(ctx, request{method: http.MethodPut, path: scopePath(scope) + "/ca", body: req}, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// IssueCertificate issues a device certificate for the key of a PKCS #10
// CSR (PEM). If the device holds an active certificate, this renews it.
func (c *Client) IssueCertificate(ctx context.Context, scope, deviceID string, csrPEM []byte) (*registry.IssuedCertificate, error) {
	var ic registry.IssuedCertificate
	body := map[string]string{"csr": string(csrPEM)}
	if err := c.do(ctx, request{method: http.MethodPost, path: devicePath(scope, deviceID) + "/certificates", body: body}, &ic); err != nil {
		return nil, err
	}
	return &ic, nil
}

// RevokeCertificate revokes a certificate by serial (hex, as in
// IssuedCertificate.Serial or as openssl prints it). reason is an RFC 5280
// reason name such as keyCompromise; empty means unspecified.
func (c *Client) RevokeCertificate(ctx context.Context, scope, serial, reason string) (*gatehouse.Credential, error) {
	var cred gatehouse.Credential
	body := struct {
		Reason string `json:"reason,omitempty"`
	}{reason}
	r := request{method: http.MethodPost, path: scopePath(scope) + "/certificates/" + seg(serial) + "/revoke", body: body}
	if err := c.do(ctx, r, &cred); err != nil {
		return nil, err
	}
	return &cred, nil
}

// RevokeCredential revokes one credential of a device by ID, whatever its
// kind: a certificate (by serial), the device's symmetric key or its
// bootstrap token (IDs as DeviceCredentials lists them). reason is an RFC
// 5280 reason name; empty means unspecified.
func (c *Client) RevokeCredential(ctx context.Context, scope, deviceID, credentialID, reason string) (*gatehouse.Credential, error) {
	var cred gatehouse.Credential
	body := struct {
		Reason string `json:"reason,omitempty"`
	}{reason}
	r := request{method: http.MethodPost, path: scopePath(scope) + "/devices/" + seg(deviceID) + "/credentials/" + seg(credentialID) + "/revoke", body: body}
	if err := c.do(ctx, r, &cred); err != nil {
		return nil, err
	}
	return &cred, nil
}

// DeviceCredentials lists a device's credentials, each status as of now.
func (c *Client) DeviceCredentials(ctx context.Context, scope, deviceID string) ([]*gatehouse.Credential, error) {
	items, _, err := getList[*gatehouse.Credential](ctx, c, request{method: http.MethodGet, path: devicePath(scope, deviceID) + "/credentials"})
	return items, err
}

// CredentialListOptions filters and pages a credential listing. Filters
// combine with AND; several Statuses or Kinds match any of them.
type CredentialListOptions struct {
	DeviceID       string
	Statuses       []gatehouse.CredentialStatus
	Kinds          []gatehouse.CredentialKind
	ExpiringBefore time.Time // zero for no bound
	Limit          int       // page size; 0 for the server's default
	Cursor         string    // NextCursor of the previous page; empty for the first
}

func (o CredentialListOptions) query() url.Values {
	q := url.Values{}
	if o.DeviceID != "" {
		q.Set("device", o.DeviceID)
	}
	for _, s := range o.Statuses {
		q.Add("status", string(s))
	}
	for _, k := range o.Kinds {
		q.Add("kind", string(k))
	}
	if !o.ExpiringBefore.IsZero() {
		q.Set("expiringBefore", o.ExpiringBefore.UTC().Format(time.RFC3339Nano))
	}
	addPaging(q, o.Limit, o.Cursor)
	return q
}

// ListCredentials returns one page of a scope's credentials, ordered by ID.
func (c *Client) ListCredentials(ctx context.Context, scope string, opts CredentialListOptions) (*registry.CredentialPage, error) {
	items, next, err := getList[*gatehouse.Credential](ctx, c, request{method: http.MethodGet, path: scopePath(scope) + "/credentials", query: opts.query()})
	if err != nil {
		return nil, err
	}
	return &registry.CredentialPage{Items: items, NextCursor: next}, nil
}

// Credentials iterates over every credential matching opts, fetching pages
// as it goes. It yields an error (and stops) if a page cannot be fetched.
func (c *Client) Credentials(ctx context.Context, scope string, opts CredentialListOptions) iter.Seq2[*gatehouse.Credential, error] {
	return pages(opts.Cursor, func(cursor string) ([]*gatehouse.Credential, string, error) {
		opts.Cursor = cursor
		return getList[*gatehouse.Credential](ctx, c, request{method: http.MethodGet, path: scopePath(scope) + "/credentials", query: opts.query()})
	})
}

// CRL returns the scope's current certificate revocation list: DER if der
// is true, else PEM (one X509 CRL block). CRLs are public; the server needs
// no token for them.
func (c *Client) CRL(ctx context.Context, scope string, der bool) ([]byte, error) {
	r := request{method: http.MethodGet, path: scopePath(scope) + "/crl", header: http.Header{"Accept": {"application/pkix-crl"}}}
	if !der {
		r.query = url.Values{"format": {"pem"}}
		r.header.Set("Accept", "application/x-pem-file")
	}
	return c.raw(ctx, r)
}

// OCSP sends a DER OCSP request (RFC 6960) about a certificate of scope and
// returns the DER response, which says good, revoked or unknown. A request
// the server cannot parse still gets a response: malformedRequest.
func (c *Client) OCSP(ctx context.Context, scope string, req []byte) ([]byte, error) {
	return c.raw(ctx, request{method: http.MethodPost, path: scopePath(scope) + "/ocsp", body: req,
		contentType: "application/ocsp-request", header: http.Header{"Accept": {"application/ocsp-response"}}})
}

// SetScopePolicy replaces a scope's policy, credentials and MQTT topics (an admin token is
// needed); zero fields take the defaults.
func (c *Client) SetScopePolicy(ctx context.Context, scope string, policy gatehouse.ScopePolicy) (*gatehouse.Scope, error) {
	var sc gatehouse.Scope
	if err := c.do(ctx, request{method: http.MethodPut, path: scopePath(scope) + "/policy", body: policy}, &sc); err != nil {
		return nil, err
	}
	return &sc, nil
}

// raw performs r and returns the response body as is.
func (c *Client) raw(ctx context.Context, r request) ([]byte, error) {
	req, err := c.newRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("read %s %s response: %w", r.method, r.path, err)
	}
	if len(b) > maxResponse {
		return nil, fmt.Errorf("%s %s: the response exceeds %d bytes", r.method, r.path, maxResponse)
	}
	return b, nil
}
