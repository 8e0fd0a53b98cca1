package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// Registry is what the API needs of the registry. *registry.Service meets it;
// tests may substitute a fake or a fault-injecting wrapper.
type Registry interface {
	Authenticate(ctx context.Context, token string) (*gatehouse.Principal, error)
	Ready(ctx context.Context) error

	CreateScope(ctx context.Context, p *gatehouse.Principal, id string) (*gatehouse.Scope, error)
	GetScope(ctx context.Context, p *gatehouse.Principal, id string) (*gatehouse.Scope, error)
	ListScopes(ctx context.Context, p *gatehouse.Principal) ([]*gatehouse.Scope, error)

	CreateToken(ctx context.Context, p *gatehouse.Principal, scope string, req registry.TokenRequest) (*registry.TokenGrant, error)
	ListTokens(ctx context.Context, p *gatehouse.Principal, scope string) ([]*gatehouse.Token, error)
	RevokeToken(ctx context.Context, p *gatehouse.Principal, scope, id string) error

	CreateDevice(ctx context.Context, p *gatehouse.Principal, scope string, req registry.DeviceCreate) (*gatehouse.Device, error)
	GetDevice(ctx context.Context, p *gatehouse.Principal, scope, id string) (*gatehouse.Device, error)
	ListDevices(ctx context.Context, p *gatehouse.Principal, scope string, q registry.DeviceQuery) (*registry.DevicePage, error)
	PatchDevice(ctx context.Context, p *gatehouse.Principal, scope, id string, patch *gatehouse.DevicePatch, ifMatch string) (*gatehouse.Device, error)
	SetState(ctx context.Context, p *gatehouse.Principal, scope, id string, to gatehouse.State, reason, ifMatch string) (*gatehouse.Device, error)
	DeleteDevice(ctx context.Context, p *gatehouse.Principal, scope, id, ifMatch string) error
	DeviceHistory(ctx context.Context, p *gatehouse.Principal, scope, id string) ([]*gatehouse.StateChange, error)
	ExportDevices(ctx context.Context, p *gatehouse.Principal, scope string, q registry.DeviceQuery, fn func([]*gatehouse.Device) error) error
	ImportDevices(ctx context.Context, p *gatehouse.Principal, scope string, req registry.ImportRequest, emit func([]registry.ImportResult) error) (*registry.ImportSummary, error)
	ImportEnrollments(ctx context.Context, p *gatehouse.Principal, scope string, req registry.ImportRequest, emit func([]registry.ImportResult) error) (*registry.ImportSummary, error)
	ExportEnrollments(ctx context.Context, p *gatehouse.Principal, scope string, q registry.EnrollmentExportQuery, fn func([]*gatehouse.Enrollment) error) error
	CreateImportJob(ctx context.Context, p *gatehouse.Principal, scope string, req registry.ImportJobCreate) (*registry.ImportJobInfo, error)
	GetImportJob(ctx context.Context, p *gatehouse.Principal, scope, id string) (*registry.ImportJobInfo, error)
	ListImportJobs(ctx context.Context, p *gatehouse.Principal, scope, cursor string, limit int) (*registry.ImportJobPage, error)
	CancelImportJob(ctx context.Context, p *gatehouse.Principal, scope, id string) (*registry.ImportJobInfo, error)
	ImportJobResults(ctx context.Context, p *gatehouse.Principal, scope, id string) (*registry.ImportJobResults, error)

	Events(ctx context.Context, p *gatehouse.Principal, scope string, after int64, limit int) ([]*gatehouse.Event, error)
	EventSignal(scope string) <-chan struct{}
	QueryEvents(ctx context.Context, p *gatehouse.Principal, scope string, q registry.EventQuery) ([]*gatehouse.Event, error)

	CreateWebhook(ctx context.Context, p *gatehouse.Principal, scope string, req registry.WebhookCreate) (*registry.WebhookInfo, error)
	ListWebhooks(ctx context.Context, p *gatehouse.Principal, scope string) ([]*registry.WebhookInfo, error)
	GetWebhook(ctx context.Context, p *gatehouse.Principal, scope, id string) (*registry.WebhookInfo, error)
	DeleteWebhook(ctx context.Context, p *gatehouse.Principal, scope, id string) error
	DeadLetters(ctx context.Context, p *gatehouse.Principal, scope, id string, after int64, limit int) ([]*gatehouse.DeadLetter, error)
	ReplayWebhook(ctx context.Context, p *gatehouse.Principal, scope, id string, fromSeq int64) (*registry.WebhookInfo, error)
	CountDevices(ctx context.Context, p *gatehouse.Principal, scope, by string) (*registry.DeviceCounts, error)

	SetScopePolicy(ctx context.Context, p *gatehouse.Principal, scope string, policy gatehouse.ScopePolicy) (*gatehouse.Scope, error)
	CA(ctx context.Context, p *gatehouse.Principal, scope string) (*registry.CAInfo, error)
	ImportCA(ctx context.Context, p *gatehouse.Principal, scope string, req registry.CAImport) (*registry.CAInfo, error)
	IssueCertificate(ctx context.Context, p *gatehouse.Principal, scope, deviceID string, csr []byte) (*registry.IssuedCertificate, error)
	RevokeCertificate(ctx context.Context, p *gatehouse.Principal, scope, serial, reason string) (*gatehouse.Credential, error)
	RevokeCredential(ctx context.Context, p *gatehouse.Principal, scope, deviceID, credentialID, reason string) (*gatehouse.Credential, error)
	ListCredentials(ctx context.Context, p *gatehouse.Principal, scope string, q registry.CredentialQuery) (*registry.CredentialPage, error)
	DeviceCredentials(ctx context.Context, p *gatehouse.Principal, scope, deviceID string) ([]*gatehouse.Credential, error)
	CreateEnrollment(ctx context.Context, p *gatehouse.Principal, scope string, req registry.EnrollmentCreate) (*gatehouse.Enrollment, error)
	GetEnrollment(ctx context.Context, p *gatehouse.Principal, scope, id string) (*gatehouse.Enrollment, error)
	ListEnrollments(ctx context.Context, p *gatehouse.Principal, scope string, typ gatehouse.EnrollmentType, cursor string, limit int) (*registry.EnrollmentPage, error)
	PatchEnrollment(ctx context.Context, p *gatehouse.Principal, scope, id string, patch registry.EnrollmentPatch, ifMatch string) (*gatehouse.Enrollment, error)
	DeleteEnrollment(ctx context.Context, p *gatehouse.Principal, scope, id string) error
	NewVerificationCode(ctx context.Context, p *gatehouse.Principal, scope, id string) (string, error)
	VerifyCA(ctx context.Context, p *gatehouse.Principal, scope, id, proofPEM string) (*gatehouse.Enrollment, error)
	GetRegistration(ctx context.Context, p *gatehouse.Principal, scope, registrationID string) (*gatehouse.Registration, error)

	// CRL and OCSP need no principal: revocation status is public.
	CRL(ctx context.Context, scope string) (*gatehouse.CRL, error)
	OCSP(ctx context.Context, scope string, req []byte) ([]byte, error)
}

// Defaults.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultPollInterval = time.Second
	keepaliveInterval   = 15 * time.Second
)

// Handler is the admin API. It is safe for concurrent use.
type Handler struct {
	reg       Registry
	log       *slog.Logger
	maxBody   int64
	poll      time.Duration
	keepalive time.Duration
	mux       *http.ServeMux
	done      chan struct{} // closed by Close: event streams end
	closeOnce sync.Once
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger for access logs and internal errors.
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithMaxBodyBytes caps request bodies (default 1 MiB). Larger bodies are
// refused with 413.
func WithMaxBodyBytes(n int64) Option { return func(h *Handler) { h.maxBody = n } }

// WithPollInterval sets how often an event stream reads the log when no
// signal wakes it (default 1s). The signal covers this node's commits; the
// poll covers other nodes sharing the database.
func WithPollInterval(d time.Duration) Option { return func(h *Handler) { h.poll = d } }

// New returns the admin API over reg.
func New(reg Registry, opts ...Option) *Handler {
	h := &Handler{
		reg:       reg,
		log:       slog.New(slog.DiscardHandler),
		maxBody:   DefaultMaxBodyBytes,
		poll:      DefaultPollInterval,
		keepalive: keepaliveInterval,
		done:      make(chan struct{}),
	}
	for _, o := range opts {
		o(h)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.poll <= 0 {
		h.poll = DefaultPollInterval
	}
	h.mux = h.newMux()
	return h
}

// Close ends the event streams in progress and makes new ones end at once.
// http.Server.Shutdown waits for active requests, and a stream never ends on
// its own, so register it: srv.RegisterOnShutdown(h.Close). Other requests
// are unaffected.
func (h *Handler) Close() {
	h.closeOnce.Do(func() { close(h.done) })
}

// handlerFunc is the shape of every endpoint: it writes a success response
// or returns an error, which serveError turns into a problem response.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// newMux registers the route table, plus method-less patterns for each path
// (405 with Allow) and a catch-all (404), so that every miss is a problem
// response rather than net/http's plain text.
func (h *Handler) newMux() *http.ServeMux {
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	var paths []string
	for _, rt := range routes {
		fn := handlerFunc(func(w http.ResponseWriter, r *http.Request) error { return rt.fn(h, w, r) })
		if rt.auth {
			fn = h.authenticated(fn)
		}
		mux.Handle(rt.method+" "+rt.path, h.endpoint(fn))
		if _, ok := allowed[rt.path]; !ok {
			paths = append(paths, rt.path)
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
		if rt.method == http.MethodGet {
			allowed[rt.path] = append(allowed[rt.path], http.MethodHead)
		}
	}
	for _, p := range paths {
		allow := strings.Join(allowed[p], ", ")
		mux.Handle(p, h.endpoint(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return gatehouse.Errorf(gatehouse.EMethodNotAllowed, "%s is not allowed on this resource; allowed: %s", r.Method, allow)
		}))
	}
	mux.Handle("/", h.endpoint(func(w http.ResponseWriter, r *http.Request) error {
		return gatehouse.Errorf(gatehouse.ENotFound, "no such resource; see /v1/openapi.json for the API")
	}))
	return mux
}

// endpoint adapts a handlerFunc to http.Handler: the one place where an
// error becomes a response.
func (h *Handler) endpoint(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			h.serveError(w, r, err)
		}
	})
}

// ServeHTTP sets security headers, recovers panics, dispatches and writes
// the access log.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	info := &requestInfo{}
	r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))

	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	hdr.Set("Cache-Control", "no-store")
	if r.TLS != nil {
		hdr.Set("Strict-Transport-Security", "max-age=63072000")
	}

	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.ErrorContext(r.Context(), "panic serving request",
				"method", r.Method, "path", r.URL.Path, "err", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !rec.wrote {
				h.writeProblem(rec, r, gatehouse.EInternal, gatehouse.ErrorMessage(errors.New("panic")))
			}
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.statusCode()),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("scope", r.PathValue("scope")),
		}
		if r.Pattern != "" {
			attrs = append(attrs, slog.String("route", r.Pattern))
		}
		if info.tokenID != "" {
			attrs = append(attrs, slog.String("token_id", info.tokenID))
		}
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "http request", attrs...)
	}()

	h.mux.ServeHTTP(rec, r)
}

// requestInfo collects what the access log reports that only inner layers
// learn (the authenticated token's public ID).
type requestInfo struct {
	tokenID string
}

type requestInfoKey struct{}
type principalKey struct{}

// authenticated resolves the bearer token before fn runs. The registry
// methods authorise the principal against the scope they touch.
func (h *Handler) authenticated(fn handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := h.authenticate(r)
		if err != nil {
			return err
		}
		if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
			info.tokenID = p.TokenID
		}
		return fn(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

func (h *Handler) authenticate(r *http.Request) (*gatehouse.Principal, error) {
	hdr := r.Header.Values("Authorization")
	if len(hdr) == 0 {
		return nil, gatehouse.Errorf(gatehouse.EUnauthenticated, "authentication required: send Authorization: Bearer <token>")
	}
	scheme, token, ok := strings.Cut(hdr[0], " ")
	token = strings.TrimSpace(token)
	if len(hdr) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, gatehouse.Errorf(gatehouse.EUnauthenticated, "the Authorization header must be Bearer <token>")
	}
	p, err := h.reg.Authenticate(r.Context(), token)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, errors.New("authenticate: registry returned no principal")
	}
	return p, nil
}

// principal returns the caller authenticated for r. It is nil outside an
// authenticated route, which every registry method refuses.
func principal(r *http.Request) *gatehouse.Principal {
	p, _ := r.Context().Value(principalKey{}).(*gatehouse.Principal)
	return p
}

// recorder remembers the status for the access log and whether the
// response has started (after which an error can only be logged).
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status = code
		// 1xx responses are informational; the real one is still to come.
		r.wrote = code >= 200
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status = http.StatusOK
		r.wrote = true
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) statusCode() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// FlushError flushes, reporting a broken connection (http.ResponseController
// prefers it to Flush).
func (r *recorder) FlushError() error {
	if !r.wrote {
		r.status = http.StatusOK
		r.wrote = true
	}
	return http.NewResponseController(r.ResponseWriter).Flush()
}

// Flush supports callers that type-assert http.Flusher.
func (r *recorder) Flush() { r.FlushError() }
