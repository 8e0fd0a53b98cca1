package devicehttp

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/provision"
)

// Provisioner is what the device dialects need of the provisioning core.
// *provision.Service meets it; tests may substitute a fake.
type Provisioner interface {
	Register(ctx context.Context, req provision.Request) (*provision.Result, error)
	Operation(ctx context.Context, req provision.Request, operationID string) (*gatehouse.Registration, *gatehouse.Device, error)
	CAChain(ctx context.Context, scope string) ([]*x509.Certificate, error)
	IssuedChain(ctx context.Context, reg *gatehouse.Registration) ([][]byte, error)
	Reenroll(ctx context.Context, scope string, chain []*x509.Certificate, csr []byte, source string) (*provision.Result, error)
}

// DefaultMaxBodyBytes caps request bodies unless WithMaxBodyBytes says
// otherwise. A registration body is a few hundred bytes; a CSR with a
// 4096-bit RSA key about two kilobytes.
const DefaultMaxBodyBytes = 64 << 10

// Option configures the handler.
type Option func(*handler)

// WithLogger sets the logger for internal errors and the access log.
func WithLogger(l *slog.Logger) Option { return func(h *handler) { h.log = l } }

// WithMaxBodyBytes caps request bodies (default 64 KiB).
func WithMaxBodyBytes(n int64) Option { return func(h *handler) { h.maxBody = n } }

// withClock sets the time source of timestamps in error bodies (tests).
func withClock(now func() time.Time) Option { return func(h *handler) { h.now = now } }

// handler serves the three dialects. It is safe for concurrent use.
type handler struct {
	p       Provisioner
	log     *slog.Logger
	maxBody int64
	now     func() time.Time
	mux     *http.ServeMux
	issued  *issuedCache
}

// New returns the device-facing HTTP handler over p. It answers every path
// it is given: unknown paths get a 404 in the format of the dialect the
// path looks like (JSON otherwise).
func New(p Provisioner, opts ...Option) http.Handler {
	h := &handler{p: p, log: slog.New(slog.DiscardHandler), maxBody: DefaultMaxBodyBytes, now: time.Now, issued: newIssuedCache()}
	for _, o := range opts {
		o(h)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	h.mux = h.newMux()
	return h
}

// dialect is one protocol's way of answering: its one error table lives
// behind writeError.
type dialect interface {
	name() string
	writeError(h *handler, w http.ResponseWriter, r *http.Request, err error)
}

// handlerFunc is the shape of every endpoint: it writes a success response
// or returns an error, which its dialect turns into a response.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type route struct {
	method, path string
	d            dialect
	fn           func(h *handler, w http.ResponseWriter, r *http.Request) error
}

// routes is the route table. Go's ServeMux patterns keep the dialects
// apart: their second path segments are distinct literals.
var routes = []route{
	{http.MethodPut, "/{scope}/registrations/{registrationId}/register", dps{}, (*handler).dpsRegister},
	{http.MethodGet, "/{scope}/registrations/{registrationId}/operations/{operationId}", dps{}, (*handler).dpsOperation},

	{http.MethodGet, "/.well-known/est/cacerts", est{}, (*handler).estCACerts},
	{http.MethodGet, "/.well-known/est/{label}/cacerts", est{}, (*handler).estCACerts},
	{http.MethodPost, "/.well-known/est/simpleenroll", est{}, (*handler).estSimpleEnroll},
	{http.MethodPost, "/.well-known/est/{label}/simpleenroll", est{}, (*handler).estSimpleEnroll},
	{http.MethodPost, "/.well-known/est/simplereenroll", est{}, (*handler).estSimpleReenroll},
	{http.MethodPost, "/.well-known/est/{label}/simplereenroll", est{}, (*handler).estSimpleReenroll},
	{http.MethodGet, "/.well-known/est/csrattrs", est{}, (*handler).estCSRAttrs},
	{http.MethodGet, "/.well-known/est/{label}/csrattrs", est{}, (*handler).estCSRAttrs},

	{http.MethodPost, "/device/v1/{scope}/register", native{}, (*handler).nativeRegister},
	{http.MethodPost, "/device/v1/{scope}/renew", native{}, (*handler).nativeRenew},
	{http.MethodGet, "/device/v1/{scope}/ca", native{}, (*handler).nativeCA},
}

// newMux registers the routes, method-less patterns for each path (405
// with Allow) and catch-alls per dialect (404), so that every miss is
// answered in the format its client understands.
func (h *handler) newMux() *http.ServeMux {
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	dialectOf := map[string]dialect{}
	var paths []string
	for _, rt := range routes {
		mux.Handle(rt.method+" "+rt.path, h.endpoint(rt.d, func(w http.ResponseWriter, r *http.Request) error { return rt.fn(h, w, r) }))
		if _, ok := allowed[rt.path]; !ok {
			paths = append(paths, rt.path)
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
		if rt.method == http.MethodGet {
			allowed[rt.path] = append(allowed[rt.path], http.MethodHead)
		}
		dialectOf[rt.path] = rt.d
	}
	for _, p := range paths {
		allow := strings.Join(allowed[p], ", ")
		mux.Handle(p, h.endpoint(dialectOf[p], func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return gatehouse.Errorf(gatehouse.EMethodNotAllowed, "%s is not allowed here; allowed: %s", r.Method, allow)
		}))
	}
	notFound := func(what string) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			return gatehouse.Errorf(gatehouse.ENotFound, "no such resource; %s", what)
		}
	}
	mux.Handle("/.well-known/est/", h.endpoint(est{}, notFound("EST resources are cacerts, simpleenroll, simplereenroll and csrattrs, optionally after a label: /.well-known/est/{scope}/cacerts")))
	mux.Handle("/device/v1/", h.endpoint(native{}, notFound("the device API has /device/v1/{scope}/register, /renew and /ca")))
	mux.Handle("/", h.endpoint(dps{}, notFound("see docs/device-api.md for the device endpoints")))
	return mux
}

// endpoint adapts a handlerFunc to http.Handler: the one place where an
// error becomes a response, in its dialect's format.
func (h *handler) endpoint(d dialect, fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
			info.dialect = d.name()
		}
		if err := fn(w, r); err != nil {
			if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
				info.code = gatehouse.ErrorCode(err)
			}
			d.writeError(h, w, r, err)
		}
	})
}

type requestInfoKey struct{}

// requestInfo carries what the access log reports from the endpoint.
type requestInfo struct {
	dialect string
	code    string
}

// ServeHTTP recovers panics, dispatches and writes the access log. The log
// names the path (scope, registration ID), never a header or the body:
// those carry secrets.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	info := &requestInfo{dialect: "none"}
	r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-store")
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.ErrorContext(r.Context(), "panic serving device request", "method", r.Method, "path", r.URL.Path,
				"err", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !rec.wrote {
				rec.Header().Set("Content-Type", "text/plain; charset=utf-8")
				rec.WriteHeader(http.StatusInternalServerError)
				io.WriteString(rec, "internal error; the server log has the details\n")
			}
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", rec.status()),
			slog.String("dialect", info.dialect), slog.String("source", sourceOf(r)),
			slog.Duration("duration", time.Since(start)),
		}
		if info.code != "" {
			attrs = append(attrs, slog.String("code", info.code))
		}
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "device request", attrs...)
	}()
	h.mux.ServeHTTP(rec, r)
}

// recorder remembers whether and what the handler wrote.
type recorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.code, r.wrote = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) status() int {
	if !r.wrote {
		return http.StatusOK
	}
	return r.code
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// sourceOf is the client's IP address, the key of per-source rate limits.
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// peerChain is the TLS client chain, leaf first, or nil. The server asks
// for a certificate without verifying it: the provisioning core decides
// which anchor the chain must lead to.
func peerChain(r *http.Request) []*x509.Certificate {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	return r.TLS.PeerCertificates
}

// readBody reads the whole body, at most h.maxBody bytes.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > h.maxBody {
		return nil, bodyTooLarge(h.maxBody)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, bodyTooLarge(h.maxBody)
	} else if err != nil {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "the request body could not be read")
	}
	return b, nil
}

func bodyTooLarge(n int64) error {
	return gatehouse.Errorf(gatehouse.EBodyTooLarge, "the request body is larger than %d bytes", n)
}

// retryAfterSeconds is the Retry-After value for err: the core's hint,
// rounded up to whole seconds, or def when it gave none.
func retryAfterSeconds(err error, def int) string {
	d := provision.RetryAfter(err)
	if d <= 0 {
		return strconv.Itoa(def)
	}
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}

// newTrackingID returns a random UUID (version 4) that names one failed
// request in the answer and in the log.
func newTrackingID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b[:])
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// logFailure logs what a client cannot be told: the cause of an internal
// or unavailable error, or an error whose code no table maps.
func (h *handler) logFailure(r *http.Request, d dialect, code string, known bool, err error, attrs ...any) {
	switch {
	case !known:
		h.log.ErrorContext(r.Context(), "device request failed with an unmapped code", append([]any{"dialect", d.name(), "code", code,
			"method", r.Method, "path", r.URL.Path, "err", err}, attrs...)...)
	case code == gatehouse.EInternal || code == gatehouse.EUnavailable || code == gatehouse.EWebhookFailed:
		h.log.ErrorContext(r.Context(), "device request failed", append([]any{"dialect", d.name(), "code", code,
			"method", r.Method, "path", r.URL.Path, "err", err}, attrs...)...)
	}
}
