package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/devicehttp"
	"github.com/gatehouse-iot/gatehouse/httpapi"
	"github.com/gatehouse-iot/gatehouse/mqttapi"
	"github.com/gatehouse-iot/gatehouse/netguard"
	"github.com/gatehouse-iot/gatehouse/provision"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/gatehouse-iot/gatehouse/secret"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/gatehouse-iot/gatehouse/store/sqlite"
)

// Defaults of a node started with no configuration.
const (
	DefaultDataDir   = "./gatehouse-data"
	DefaultHTTPAddr  = ":8443"
	DefaultMQTTAddr  = ":8883"
	DefaultCoAPSAddr = ":5684"
)

// Files in the data directory.
const (
	MasterKeyFile  = "master.key"  // 32 random bytes, 0600: seals every secret at rest
	AdminTokenFile = "admin-token" // the installation-wide admin token, 0600
	CAFile         = "ca.pem"      // the installation root certificate clients trust
	URLFile        = "url"         // this node's HTTPS URL, for the CLI
	SQLiteFile     = "gatehouse.db"
	NodeIDFile     = "node-id"     // this node's name among nodes sharing a database
	ImportJobsDir  = "import-jobs" // encrypted import spools and result files, 0700
	LockFile       = "lock"        // held (flock) while a node runs on the directory; its PID
)

// Config configures a node. The zero value is a working embedded node.
type Config struct {
	DataDir       string
	HTTPAddr      string
	Database      string // sqlite:///path/file.db (default DATA/gatehouse.db) or postgres://...
	PublicHosts   []string
	MasterKeyFile string // default DATA/master.key
	Logger        *slog.Logger
	Now           func() time.Time
	SweepInterval time.Duration // how often timed work runs (credential expiry, CRLs); default 30s
	RateLimits    *RateLimits   // device-facing limits; nil takes the provisioning defaults
	// AssignedHub is the hub (host[:port]) a registration answers as
	// assignedHub when its enrollment names no endpoint. Empty: the first
	// public host, with the MQTT port unless it is 8883, when MQTT over TLS
	// is on; else none.
	AssignedHub string
	// WebhookDeny closes address ranges to outbound webhooks (event
	// delivery, pre-provisioning, allocation): netguard.Parse's syntax.
	// Empty: netguard.Default (link-local, where clouds serve instance
	// metadata).
	WebhookDeny string

	// Device protocol listeners; empty disables one. (The serve command
	// enables MQTT over TLS on :8883 and CoAP over DTLS on :5684 by default.)
	MQTTAddr    string // MQTT over TLS
	MQTTWSAddr  string // MQTT over secure WebSocket
	MQTTTCPAddr string // plain MQTT, only when explicitly asked for
	CoAPSAddr   string // CoAP over DTLS (UDP)
	CoAPAddr    string // plain CoAP: discovery only
	// MQTTHookSecret enables the external-broker hook at /hooks/emqx/ (EMQX
	// 5 HTTP authn/authz, mosquitto-go-auth); brokers send it as a bearer
	// token. Empty: the hook is not served.
	MQTTHookSecret string
	// MQTTLimits bound what one MQTT client may do (packet size,
	// connections per source address, queues); zero members take the
	// defaults of mqttapi.Limits.
	MQTTLimits mqttapi.Limits
	// ImportJobs bounds the background imports this node runs; zero
	// members take the registry's defaults (2 at once, 1 GiB, 7 days, a
	// lease of 2 minutes).
	ImportJobs ImportJobLimits
}

// ImportJobLimits bounds a node's import jobs.
type ImportJobLimits struct {
	MaxConcurrent int
	MaxUpload     int64
	TTL           time.Duration
	// Lease: how long a job's node may go without renewing it before any
	// node fails the job (registry.ImportJobConfig.Lease).
	Lease time.Duration
}

// RateLimits bounds device-facing requests, per node: per source address
// and per registration ID, in requests per second with a burst.
type RateLimits struct {
	PerSource   float64
	SourceBurst int
	PerID       float64
	IDBurst     int
}

// Server is a running node.
type Server struct {
	cfg       Config
	log       *slog.Logger
	store     gatehouse.Store
	registry  *registry.Service
	provision *provision.Service
	http      *http.Server
	lock      *os.File // the data directory's lock (nil where there is no flock)
	ln        net.Listener
	url       string
	stopBase  context.CancelFunc
	served    chan error

	sweeperDone  chan struct{}
	presenceDone chan struct{}
	jobsDone     chan struct{}
	webhooksDone chan struct{}

	mqtt *mqttNode // nil when no MQTT listener is configured
	coap *coapNode // nil when no CoAP listener is configured
}

// Run starts a node and serves until ctx ends, then shuts it down gracefully.
func Run(ctx context.Context, cfg Config) error {
	s, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case err := <-s.served:
		s.log.Error("https server stopped", "err", err)
		s.Close()
		return err
	}
	return s.Close()
}

// Start opens everything and starts serving in the background.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	cfg = withDefaults(cfg)
	s := &Server{cfg: cfg, log: cfg.Logger, served: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if s.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	// A URL left by an earlier run must not pass for this one's while
	// this one starts (the lock says no other node runs here).
	if err := os.Remove(filepath.Join(cfg.DataDir, URLFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove the previous %s: %w", URLFile, err)
	}
	kr, err := loadKeyring(cfg)
	if err != nil {
		return nil, err
	}
	if s.store, err = OpenStore(ctx, cfg.Database, cfg.DataDir); err != nil {
		return nil, err
	}
	root, err := ca.LoadOrCreateInstallationCA(ctx, s.store, kr, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("installation CA: %w", err)
	}
	node, err := loadNodeID(filepath.Join(cfg.DataDir, NodeIDFile))
	if err != nil {
		return nil, err
	}
	jobs := registry.ImportJobConfig{
		Dir: filepath.Join(cfg.DataDir, ImportJobsDir), Node: node, MaxConcurrent: cfg.ImportJobs.MaxConcurrent,
		MaxUpload: cfg.ImportJobs.MaxUpload, TTL: cfg.ImportJobs.TTL, Lease: cfg.ImportJobs.Lease,
	}
	s.registry = registry.New(s.store, registry.WithLogger(s.log), registry.WithClock(cfg.Now), registry.WithCA(root, kr),
		registry.WithImportJobs(jobs))
	if err := s.registry.EnsureScope(ctx, gatehouse.DefaultScope); err != nil {
		return nil, fmt.Errorf("create default scope: %w", err)
	}
	if err := s.registry.EnsureScopeCAs(ctx); err != nil {
		return nil, fmt.Errorf("scope CAs: %w", err)
	}
	if err := s.ensureAdminToken(ctx); err != nil {
		return nil, err
	}
	if err := ca.WriteFileAtomic(filepath.Join(cfg.DataDir, CAFile), root.CertPEM(), 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", CAFile, err)
	}
	if s.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	cert, err := root.IssueServerCertificate(serverHosts(cfg, s.ln.Addr()), cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("issue server certificate: %w", err)
	}
	s.url = nodeURL(s.ln.Addr())
	base, stop := context.WithCancel(context.Background())
	s.stopBase = stop
	popts := []provision.Option{provision.WithLogger(s.log), provision.WithClock(cfg.Now)}
	if rl := cfg.RateLimits; rl != nil {
		if rl.PerSource <= 0 || rl.SourceBurst < 1 || rl.PerID <= 0 || rl.IDBurst < 1 {
			return nil, fmt.Errorf("rate limits must be positive (per source %v burst %d, per ID %v burst %d)", rl.PerSource, rl.SourceBurst, rl.PerID, rl.IDBurst)
		}
		popts = append(popts, provision.WithRateLimits(rl.PerSource, rl.SourceBurst, rl.PerID, rl.IDBurst))
	}
	hub, err := assignedHub(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.WebhookDeny == "" {
		cfg.WebhookDeny = netguard.Default
	}
	guard, err := netguard.Parse(cfg.WebhookDeny)
	if err != nil {
		return nil, err
	}
	popts = append(popts, provision.WithDefaultHub(hub), provision.WithHTTPClient(guard.Client(30*time.Second)))
	s.provision = provision.New(s.store, s.registry, popts...)
	tlsConfig := ca.ServerTLSConfig(cert)
	// Devices authenticate with client certificates (factory or
	// operational). Which CA to trust depends on the scope and enrollment,
	// so the handshake only asks for a certificate and checks the proof of
	// possession; the provisioning core verifies the chain.
	tlsConfig.ClientAuth = tls.RequestClientCert
	s.http = &http.Server{
		Handler:           s.routes(),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	// Import jobs are ready before the first request can submit one.
	s.registry.StartImportJobs(base)
	tlsLn := tls.NewListener(s.ln, s.http.TLSConfig)
	srv := s.http
	go func() {
		err := srv.Serve(tlsLn)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.served <- err
	}()
	if err := s.startMQTT(base, cert); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	if err := s.startCoAP(base, cert); err != nil {
		return nil, fmt.Errorf("coap: %w", err)
	}
	s.sweeperDone = make(chan struct{})
	go s.sweep(base, cfg.SweepInterval)
	s.webhooksDone = make(chan struct{})
	go func() {
		defer close(s.webhooksDone)
		s.registry.RunWebhooks(base, registry.WebhookConfig{Node: nodeName(), Client: guard.Client(0)})
	}()
	s.presenceDone = make(chan struct{})
	go func() {
		defer close(s.presenceDone)
		s.registry.RunPresence(base)
	}()
	s.jobsDone = make(chan struct{})
	go func() {
		defer close(s.jobsDone)
		s.registry.RunImportJobs(base)
	}()
	// DATA/url last: once it names this run's URL, every listener is up.
	if err := ca.WriteFileAtomic(filepath.Join(cfg.DataDir, URLFile), []byte(s.url+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", URLFile, err)
	}
	s.log.Info("gatehouse serving", "url", s.url, "addr", s.ln.Addr().String(), "data_dir", cfg.DataDir,
		"database", databaseKind(cfg.Database), "ca_file", filepath.Join(cfg.DataDir, CAFile))
	return s, nil
}

// routes composes the HTTPS listener: the admin API owns /v1/ and the
// health checks; the device dialects (DPS, EST, native) own the rest.
func (s *Server) routes() http.Handler {
	admin := httpapi.New(s.registry, httpapi.WithLogger(s.log))
	mux := http.NewServeMux()
	mux.Handle("/v1/", admin)
	mux.Handle("/healthz", admin)
	mux.Handle("/readyz", admin)
	mux.Handle("/metrics", s.metricsHandler())
	if s.cfg.MQTTHookSecret != "" {
		mux.Handle("/hooks/emqx/", s.mqttHookHandler())
	}
	mux.Handle("/", devicehttp.New(s.provision, devicehttp.WithLogger(s.log)))
	return mux
}

// URL is the node's HTTPS base URL.
func (s *Server) URL() string { return s.url }

// Addr is the address the HTTPS listener is bound to.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Registry returns the node's registry (for in-process tools and tests).
func (s *Server) Registry() *registry.Service { return s.registry }

// Close stops accepting requests, lets running ones finish (ending event
// streams), and closes the database. It is safe to call more than once.
func (s *Server) Close() error {
	var errs []error
	if s.http != nil {
		if s.stopBase != nil {
			s.stopBase()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, s.http.Shutdown(ctx))
		cancel()
		s.http = nil
		errs = append(errs, s.stopMQTT(), s.stopCoAP())
		if s.sweeperDone != nil {
			<-s.sweeperDone
		}
		if s.presenceDone != nil {
			<-s.presenceDone // the last presence updates are written
		}
		if s.jobsDone != nil {
			<-s.jobsDone // running import jobs stopped between batches and marked failed
		}
		if s.webhooksDone != nil {
			<-s.webhooksDone // no delivery reads the store after it closes
		}
	} else if s.ln != nil {
		s.ln.Close()
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
		s.store = nil
	}
	// DATA/url names a server that is up: not this one any more. Removed
	// before the lock goes, so no later run's file can be.
	if s.lock != nil {
		if s.url != "" {
			os.Remove(filepath.Join(s.cfg.DataDir, URLFile))
		}
		unlockDataDir(s.lock)
		s.lock = nil
	}
	return errors.Join(errs...)
}

func withDefaults(cfg Config) Config {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultHTTPAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 30 * time.Second
	}
	if cfg.MasterKeyFile == "" {
		cfg.MasterKeyFile = os.Getenv("GATEHOUSE_MASTER_KEY_FILE")
	}
	return cfg
}

func loadKeyring(cfg Config) (*secret.Keyring, error) {
	if cfg.MasterKeyFile != "" {
		kr, err := secret.LoadMasterKeyFile(cfg.MasterKeyFile)
		if err != nil {
			return nil, fmt.Errorf("master key: %w", err)
		}
		return kr, nil
	}
	kr, err := secret.LoadOrCreateMasterKey(filepath.Join(cfg.DataDir, MasterKeyFile))
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return kr, nil
}

// OpenStore opens the database a URL names: sqlite:///path/file.db (the
// default, in the data dir) or postgres://... .
func OpenStore(ctx context.Context, database, dataDir string) (gatehouse.Store, error) {
	switch {
	case database == "":
		return sqlite.Open(filepath.Join(dataDir, SQLiteFile))
	case strings.HasPrefix(database, "sqlite://"):
		path := strings.TrimPrefix(database, "sqlite://")
		if path == "" || path == "/" {
			return nil, fmt.Errorf("database %q names no file; use sqlite:///path/to/file.db", database)
		}
		return sqlite.Open(path)
	case strings.HasPrefix(database, "postgres://"), strings.HasPrefix(database, "postgresql://"):
		return postgres.Open(ctx, database)
	}
	return nil, fmt.Errorf("database URL must start with sqlite:// or postgres:// (got scheme %q)", databaseKind(database))
}

// databaseKind names the database without credentials, for logs.
func databaseKind(database string) string {
	if database == "" {
		return "sqlite"
	}
	scheme, _, _ := strings.Cut(database, "://")
	return scheme
}

// serverHosts lists the names the HTTPS certificate covers.
func serverHosts(cfg Config, addr net.Addr) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	if ta, ok := addr.(*net.TCPAddr); ok && !ta.IP.IsUnspecified() && !ta.IP.IsLoopback() {
		hosts = append(hosts, ta.IP.String())
	}
	return append(hosts, cfg.PublicHosts...)
}

// assignedHub is the hub devices are assigned when their enrollment names
// none: cfg.AssignedHub, else this node's MQTT broker under its first
// public host name.
func assignedHub(cfg Config) (string, error) {
	if cfg.AssignedHub != "" {
		if err := gatehouse.ValidateEndpointHost(cfg.AssignedHub); err != nil {
			return "", fmt.Errorf("assigned hub: %w", err)
		}
		return cfg.AssignedHub, nil
	}
	if len(cfg.PublicHosts) == 0 || cfg.MQTTAddr == "" {
		return "", nil
	}
	_, port, err := net.SplitHostPort(cfg.MQTTAddr)
	if err != nil || port == "0" {
		return "", nil
	}
	if port == "8883" {
		return cfg.PublicHosts[0], nil
	}
	return net.JoinHostPort(cfg.PublicHosts[0], port), nil
}

// nodeURL is how a client on this machine reaches the node.
func nodeURL(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || ta.IP.IsUnspecified() {
		_, port, _ := net.SplitHostPort(addr.String())
		return "https://localhost:" + port
	}
	return "https://" + net.JoinHostPort(ta.IP.String(), fmt.Sprint(ta.Port))
}

// sweep runs the registry's timed work until ctx ends.
func (s *Server) sweep(ctx context.Context, every time.Duration) {
	defer close(s.sweeperDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.registry.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// loadNodeID reads this node's name from path, creating it on first start.
// It names the node that holds an import job's spool, so that the node,
// restarted, fails the jobs it can no longer read.
func loadNodeID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !os.IsNotExist(err) {
		return "", fmt.Errorf("read %s: %w", NodeIDFile, err)
	}
	raw := make([]byte, 8)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	id := "node-" + hex.EncodeToString(raw)
	if err := ca.WriteFileAtomic(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", NodeIDFile, err)
	}
	return id, nil
}
