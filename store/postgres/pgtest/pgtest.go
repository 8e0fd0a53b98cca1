// Package pgtest gives tests throwaway PostgreSQL databases on the server
// named by GATEHOUSE_TEST_POSTGRES (scripts/test starts one and sets it).
// Without it a test is skipped, except in CI (CI=true), where skipping would
// hide that the PostgreSQL paths went untested.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvVar names the server DSN variable.
const EnvVar = "GATEHOUSE_TEST_POSTGRES"

// ServerDSN returns the test server's DSN, or skips (fails in CI).
func ServerDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(EnvVar)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal(EnvVar + " must be set in CI")
		}
		tb.Skip(EnvVar + " is not set; run ./scripts/test, which starts a throwaway PostgreSQL and sets it")
	}
	return dsn
}

// NewDatabase creates an empty database, drops it when the test ends, and
// returns its DSN.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	dsn := ServerDSN(tb)
	ctx := context.Background()
	b := make([]byte, 8)
	rand.Read(b)
	name := "gh_test_" + hex.EncodeToString(b)
	admin, err := connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("connect to the test server: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := connect(ctx, dsn)
		if err != nil {
			tb.Errorf("connect to drop %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	return WithDatabase(tb, dsn, name)
}

func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg.ConnConfig)
}

// WithDatabase returns dsn pointed at database name.
func WithDatabase(tb testing.TB, dsn, name string) string {
	tb.Helper()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " dbname=" + name
	}
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("%s: %v", EnvVar, err)
	}
	u.Path = "/" + name
	return u.String()
}
