package postgres_test

import (
	"context"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/gatehouse-iot/gatehouse/store/postgres/pgtest"
	"github.com/gatehouse-iot/gatehouse/store/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// serverDSN and newDatabase come from pgtest: a fresh database per call on
// the server named by GATEHOUSE_TEST_POSTGRES, skipped without it (failed
// in CI).
var (
	serverDSN   = pgtest.ServerDSN
	newDatabase = pgtest.NewDatabase
)

// connectConn opens one connection to dsn, which may carry the pool_*
// parameters only pgxpool understands.
func connectConn(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg.ConnConfig)
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
