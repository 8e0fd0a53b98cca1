package main

import (
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/netguard"
	"github.com/gatehouse-iot/gatehouse/server"
)

// Environment variables of serve's flags. GATEHOUSE_DATA_DIR is shared with
// the admin commands.
const (
	envHTTPAddr      = "GATEHOUSE_HTTP_ADDR"
	envDatabase      = "GATEHOUSE_DATABASE"
	envPublicHost    = "GATEHOUSE_PUBLIC_HOST"
	envLogFormat     = "GATEHOUSE_LOG_FORMAT"
	envMasterKeyFile = "GATEHOUSE_MASTER_KEY_FILE"
	envMQTTAddr      = "GATEHOUSE_MQTT_ADDR"
	envMQTTWSAddr    = "GATEHOUSE_MQTT_WS_ADDR"
	envMQTTTCPAddr   = "GATEHOUSE_MQTT_TCP_ADDR"
	envCoAPSAddr     = "GATEHOUSE_COAPS_ADDR"
	envCoAPAddr      = "GATEHOUSE_COAP_ADDR"
	envMQTTHookFile  = "GATEHOUSE_MQTT_HOOK_SECRET_FILE"
	envAssignedHub   = "GATEHOUSE_ASSIGNED_HUB"
	envWebhookDeny   = "GATEHOUSE_WEBHOOK_DENY"
)

func (a *app) serveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Gatehouse server",
		Long: `Run a Gatehouse server until interrupted (SIGINT or SIGTERM).

On first start it creates its data directory with a master key, an
installation CA (ca.pem, for clients to trust), an installation-wide admin
token (admin-token) and, by default, an SQLite database. It writes its HTTPS
URL to DATA/url, so that admin commands on the same host need no flags.

Every flag may also be set by an environment variable (the flag wins):
GATEHOUSE_DATA_DIR, GATEHOUSE_HTTP_ADDR, GATEHOUSE_DATABASE,
GATEHOUSE_PUBLIC_HOST (comma-separated), GATEHOUSE_LOG_FORMAT,
GATEHOUSE_MASTER_KEY_FILE, GATEHOUSE_ASSIGNED_HUB, GATEHOUSE_WEBHOOK_DENY; the MQTT and import job limits take GATEHOUSE_ and
the flag's name in capitals with underscores (GATEHOUSE_MQTT_MAX_PACKET_SIZE,
GATEHOUSE_IMPORT_MAX_UPLOAD).`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			cfg, err := serveConfig(cmd.Flags(), a.getenv)
			if err != nil {
				return err
			}
			cfg.Logger = newLogger(a.stderr, cfg.logFormat)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := server.Run(ctx, cfg.Config); err != nil {
				// Logged here, once, in the format the operator chose.
				cfg.Logger.Error("gatehouse stopped", "err", err)
				return exitStatus(1)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.String("http-addr", server.DefaultHTTPAddr, "address of the HTTPS listener (env "+envHTTPAddr+")")
	f.String("database", "", "database URL: sqlite:///path/file.db or postgres://... (env "+envDatabase+"; default sqlite:///DATA/gatehouse.db)")
	f.StringArray("public-host", nil, "a DNS name or IP address clients use to reach this server, for its certificate (repeatable; env "+envPublicHost+", comma-separated)")
	f.String("log-format", "json", "log format: json or text (env "+envLogFormat+")")
	f.String("master-key-file", "", "file holding the master key that seals secrets at rest (env "+envMasterKeyFile+"; default DATA/master.key, created if missing)")
	f.String("mqtt-addr", server.DefaultMQTTAddr, "address of the MQTT over TLS listener; \"off\" disables it (env "+envMQTTAddr+")")
	f.String("mqtt-ws-addr", "off", "address of the MQTT over secure WebSocket listener (env "+envMQTTWSAddr+")")
	f.String("mqtt-tcp-addr", "off", "address of a PLAIN-TEXT MQTT listener; only for trusted networks (env "+envMQTTTCPAddr+")")
	f.String("coaps-addr", server.DefaultCoAPSAddr, "address of the CoAP over DTLS listener (UDP); \"off\" disables it (env "+envCoAPSAddr+")")
	f.String("mqtt-hook-secret-file", "", "file holding the bearer secret external brokers (EMQX, mosquitto-go-auth) send to /hooks/emqx/; without it the hook is off (env "+envMQTTHookFile+")")
	f.String("assigned-hub", "", "host[:port] a registration answers as assignedHub when its enrollment names no endpoint (env "+envAssignedHub+"; default: the first --public-host, with the MQTT port unless 8883)")
	f.String("webhook-deny", netguard.Default, "address ranges closed to outbound webhooks: private, loopback or CIDR prefixes, comma-separated, always with link-local (cloud metadata); none opens all but 0.0.0.0, multicast and broadcast (env "+envWebhookDeny+")")
	f.String("coap-addr", "off", "address of a plain CoAP listener serving only discovery (env "+envCoAPAddr+")")
	addMQTTLimitFlags(f)
	addImportJobFlags(f)
	return cmd
}

// serveSettings is a server configuration and how to log.
type serveSettings struct {
	server.Config
	logFormat string
}

// serveConfig builds serve's configuration from its flags (which must
// include the global --data-dir) and, for flags not given, the
// environment.
func serveConfig(flags *pflag.FlagSet, getenv func(string) string) (serveSettings, error) {
	value := func(flag, env string) string {
		f := flags.Lookup(flag)
		if f != nil && f.Changed {
			return f.Value.String()
		}
		if v := strings.TrimSpace(getenv(env)); v != "" {
			return v
		}
		if f != nil {
			return f.DefValue
		}
		return ""
	}
	var s serveSettings
	s.DataDir = value("data-dir", envDataDir)
	if s.DataDir == "" {
		s.DataDir = defaultDataDir
	}
	s.HTTPAddr = value("http-addr", envHTTPAddr)
	if s.HTTPAddr == "" {
		s.HTTPAddr = server.DefaultHTTPAddr
	}
	s.Database = value("database", envDatabase)
	if s.Database == "" {
		path := filepath.Join(s.DataDir, server.SQLiteFile)
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		s.Database = "sqlite://" + filepath.ToSlash(path)
	}
	if !strings.HasPrefix(s.Database, "sqlite://") && !strings.HasPrefix(s.Database, "postgres://") && !strings.HasPrefix(s.Database, "postgresql://") {
		return s, usagef("--database must be sqlite:///path/file.db or postgres://..., not %q", redactURL(s.Database))
	}
	if f := flags.Lookup("public-host"); f != nil && f.Changed {
		hosts, _ := flags.GetStringArray("public-host")
		s.PublicHosts = splitHosts(hosts...)
	} else {
		s.PublicHosts = splitHosts(getenv(envPublicHost))
	}
	s.logFormat = value("log-format", envLogFormat)
	if s.logFormat != "json" && s.logFormat != "text" {
		return s, usagef("--log-format must be json or text, not %q", s.logFormat)
	}
	s.MasterKeyFile = value("master-key-file", envMasterKeyFile)
	addr := func(flag, env string) string {
		if v := value(flag, env); v != "off" {
			return v
		}
		return ""
	}
	s.MQTTAddr = addr("mqtt-addr", envMQTTAddr)
	s.MQTTWSAddr = addr("mqtt-ws-addr", envMQTTWSAddr)
	s.MQTTTCPAddr = addr("mqtt-tcp-addr", envMQTTTCPAddr)
	s.CoAPSAddr = addr("coaps-addr", envCoAPSAddr)
	s.CoAPAddr = addr("coap-addr", envCoAPAddr)
	if s.AssignedHub = value("assigned-hub", envAssignedHub); s.AssignedHub != "" {
		if err := gatehouse.ValidateEndpointHost(s.AssignedHub); err != nil {
			return s, usagef("--assigned-hub: %v", err)
		}
	}
	s.WebhookDeny = value("webhook-deny", envWebhookDeny)
	if _, err := netguard.Parse(s.WebhookDeny); err != nil {
		return s, usagef("--webhook-deny: %v", err)
	}
	lim, err := mqttLimits(value)
	if err != nil {
		return s, err
	}
	s.MQTTLimits = lim
	if s.ImportJobs, err = importJobLimits(value); err != nil {
		return s, err
	}
	if path := value("mqtt-hook-secret-file", envMQTTHookFile); path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return s, usagef("--mqtt-hook-secret-file: %v", err)
		}
		if s.MQTTHookSecret = strings.TrimSpace(string(raw)); len(s.MQTTHookSecret) < 16 {
			return s, usagef("--mqtt-hook-secret-file must hold a secret of at least 16 characters")
		}
	}
	return s, nil
}

// splitHosts splits comma-separated host lists and drops empty entries.
func splitHosts(lists ...string) []string {
	var hosts []string
	for _, l := range lists {
		for h := range strings.SplitSeq(l, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hosts = append(hosts, h)
			}
		}
	}
	return hosts
}

// redactURL hides a password in a database URL shown in an error.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if user, _, hasPw := strings.Cut(rest[:at], ":"); hasPw {
			return scheme + "://" + user + ":xxxxx@" + rest[at+1:]
		}
	}
	return s
}

// newLogger returns the server's logger: JSON (for log collectors) or
// text (for people), to w.
func newLogger(w io.Writer, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
