package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/gatehouse-iot/gatehouse/store/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// serverDSN returns the DSN of the test server, from GATEHOUSE_TEST_POSTGRES.
// Without it the test is skipped, except in CI, where skipping would hide
// that the PostgreSQL backend went untested.
func serverDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("GATEHOUSE_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("GATEHOUSE_TEST_POSTGRES must be set in CI")
		}
		tb.Skip("GATEHOUSE_TEST_POSTGRES is not set; run ./scripts/test, which starts a throwaway PostgreSQL and sets it")
	}
	return dsn
}

// newDatabase creates an empty database on the test server, drops it when
// the test ends, and returns its DSN.
func newDatabase(tb testing.TB) string {
	tb.Helper()
	dsn := serverDSN(tb)
	ctx := context.Background()
	b := make([]byte, 8)
	rand.Read(b)
	name := "gh_test_" + hex.EncodeToString(b)
	admin, err := connectConn(ctx, dsn)
	if err != nil {
		tb.Fatalf("connect to %s: %v", dsn, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := connectConn(ctx, dsn)
		if err != nil {
			tb.Errorf("connect to drop %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	return withDatabase(tb, dsn, name)
}

// connectConn opens one connection to dsn, which may carry the pool_*
// parameters only pgxpool understands.
func connectConn(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg.ConnConfig)
}

// withDatabase returns dsn pointed at database name.
func withDatabase(tb testing.TB, dsn, name string) string {
	tb.Helper()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " dbname=" + name // key=value form: the last one wins
	}
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("GATEHOUSE_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// mustOpen opens a store on dsn and closes it when the test ends.
func mustOpen(tb testing.TB, dsn string) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// newStore is the constructor the conformance suite calls: a fresh database
// per call, so subtests never see each other's rows.
func newStore(tb testing.TB) gatehouse.Store {
	tb.Helper()
	return mustOpen(tb, newDatabase(tb))
}

func TestStore(t *testing.T) {
	storetest.Run(t, newStore)
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, newStore)
}
