package adminclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Client calls one Gatehouse server's admin API with one token. It is safe
// for concurrent use.
type Client struct {
	base  *url.URL // scheme and host; path ends without a slash
	token string
	hc    *http.Client

	// Reconnection backoff of StreamEvents.
	minBackoff, maxBackoff time.Duration
}

// Option configures a Client.
type Option func(*options) error

type options struct {
	roots *x509.CertPool
	hc    *http.Client

	minBackoff, maxBackoff time.Duration
}

// WithCAFile trusts the PEM certificates in path (a Gatehouse server's
// DATA/ca.pem, say) instead of the system roots.
func WithCAFile(path string) Option {
	return func(o *options) error {
		pem, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("CA file %s holds no PEM certificate", path)
		}
		o.roots = pool
		return nil
	}
}

// WithRootCAs trusts the certificates in pool instead of the system roots.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(o *options) error {
		if pool == nil {
			return errors.New("WithRootCAs: nil pool")
		}
		o.roots = pool
		return nil
	}
}

// WithHTTPClient makes the Client send its requests through hc, whose
// transport then decides TLS settings: WithCAFile and WithRootCAs no longer
// apply. hc should have no overall Timeout, which would cut event streams
// short; per-call deadlines belong in the context.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) error {
		if hc == nil {
			return errors.New("WithHTTPClient: nil client")
		}
		o.hc = hc
		return nil
	}
}

// WithStreamBackoff sets the bounds of the delay between StreamEvents
// reconnection attempts (by default 250ms growing to 30s).
func WithStreamBackoff(min, max time.Duration) Option {
	return func(o *options) error {
		if min <= 0 || max < min {
			return errors.New("WithStreamBackoff: need 0 < min <= max")
		}
		o.minBackoff, o.maxBackoff = min, max
		return nil
	}
}

// New returns a client of the server at baseURL (https://host:port),
// authenticating with token. baseURL must use https unless its host is a
// loopback address.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("server URL %q is not of the form https://host[:port]", baseURL)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("server URL %q uses plain http, which would send the API token in the clear; use https", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("server URL %q may not carry credentials, a query or a fragment", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if strings.ContainsAny(token, "\r\n") {
		return nil, errors.New("the API token contains a line break")
	}
	o := options{minBackoff: 250 * time.Millisecond, maxBackoff: 30 * time.Second}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	hc := o.hc
	if hc == nil {
		hc = &http.Client{Transport: newTransport(o.roots)}
	}
	return &Client{base: u, token: strings.TrimSpace(token), hc: hc, minBackoff: o.minBackoff, maxBackoff: o.maxBackoff}, nil
}

// newTransport returns a transport that speaks TLS 1.2 or later and gives
// up on an unresponsive server quickly, without bounding how long a
// response body (an event stream) may last.
func newTransport(roots *x509.CertPool) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   8,
		ForceAttemptHTTP2:     true,
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// URL returns the server's base URL.
func (c *Client) URL() string { return c.base.String() }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// request describes one API call.
type request struct {
	method      string
	path        string // escaped path, from the API root
	query       url.Values
	body        any // encoded as JSON unless nil; json.RawMessage and []byte sent as is
	contentType string
	header      http.Header
}

// newRequest builds an *http.Request for r.
func (c *Client) newRequest(ctx context.Context, r request) (*http.Request, error) {
	target := c.base.String() + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		var b []byte
		switch raw := r.body.(type) {
		case json.RawMessage:
			b = raw
		case []byte: // a binary body (an OCSP request), with its contentType
			b = raw
		default:
			var err error
			if b, err = json.Marshal(r.body); err != nil {
				return nil, fmt.Errorf("encode request: %w", err)
			}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.body != nil {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", "gatehouse-adminclient")
	return req, nil
}

// send performs req and returns the response if its status is 2xx. Any
// other status becomes an *APIError; a failure to get a response becomes a
// *TransportError, or the context's error if the context ended.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, &TransportError{URL: c.base.String(), Err: err}
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, apiError(resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return resp, nil
}

// maxResponse bounds a decoded response body: the largest page of devices
// (1000 of up to ~72 KiB each) fits.
const maxResponse = 128 << 20

// do performs r and decodes the JSON response into out (unless out is nil).
func (c *Client) do(ctx context.Context, r request, out any) error {
	req, err := c.newRequest(ctx, r)
	if err != nil {
		return err
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(out); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("decode %s %s response: %w", r.method, r.path, err)
	}
	return nil
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// quoteETag returns an If-Match value for an etag: quoted as HTTP wants it,
// unless it is "*" or already quoted (as an ETag header is).
func quoteETag(etag string) string {
	etag = strings.TrimSpace(etag)
	if etag == "" || etag == "*" || strings.HasSuffix(etag, `"`) {
		return etag
	}
	return `"` + etag + `"`
}

// Health calls GET /healthz: nil if the server process is up.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "/healthz"}, nil)
}

// Ready calls GET /readyz: nil if the server can serve requests (its
// database is reachable).
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "/readyz"}, nil)
}

// OpenAPI returns the server's OpenAPI document.
func (c *Client) OpenAPI(ctx context.Context) (json.RawMessage, error) {
	var doc json.RawMessage
	err := c.do(ctx, request{method: http.MethodGet, path: "/v1/openapi.json"}, &doc)
	return doc, err
}
