package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse-iot/gatehouse/ca"
	"github.com/gatehouse-iot/gatehouse/metrics"
)

// MetricsTokenFile holds the bearer token Prometheus sends to /metrics
// (created on first start, 0600). It grants nothing else.
const MetricsTokenFile = "metrics-token"

// metricsHandler serves /metrics. The answer names every scope and its
// fleet, so it needs a bearer token: the contents of DATA/metrics-token,
// or an installation-wide API token (the admin token). A scoped token is
// refused: it must not learn about other scopes.
func (s *Server) metricsHandler() http.Handler {
	metrics.Default.SetFleet(s.registry, metrics.FleetOptions{Logger: s.log, Now: s.cfg.Now})
	inner := metrics.Default.Handler()
	// Made now, at start, so that it is there to configure Prometheus with.
	var want [32]byte
	tok, loadErr := loadOrCreateMetricsToken(filepath.Join(s.cfg.DataDir, MetricsTokenFile))
	if loadErr != nil {
		s.log.Error("metrics token; only installation-wide API tokens can read /metrics", "err", loadErr)
	} else {
		want = sha256.Sum256([]byte(tok))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		tok = strings.TrimSpace(tok)
		if !ok || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-metrics"`)
			http.Error(w, "metrics need a bearer token: DATA/metrics-token or an installation-wide admin token", http.StatusUnauthorized)
			return
		}
		got := sha256.Sum256([]byte(tok))
		allowed := loadErr == nil && subtle.ConstantTimeCompare(got[:], want[:]) == 1
		if !allowed {
			if p, err := s.registry.Authenticate(r.Context(), tok); err == nil && p.Global() {
				allowed = true
			}
		}
		if !allowed {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-metrics"`)
			http.Error(w, "the token is not valid for metrics", http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	})
}

// loadOrCreateMetricsToken reads the metrics token, creating it (0600)
// when absent.
func loadOrCreateMetricsToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	} else if !os.IsNotExist(err) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	tok := hex.EncodeToString(raw)
	if err := ca.WriteFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return tok, nil
}
