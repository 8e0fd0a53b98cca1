package postgres_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestMapErr(t *testing.T) {
	pgErr := func(code string) error {
		return &pgconn.PgError{Code: code, Message: "secret driver text", Detail: "Key (id)=(x)", InternalQuery: "SELECT secret"}
	}
	ge := gatehouse.Errorf(gatehouse.EPreconditionFailed, "stale")
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"unique_violation", pgErr("23505"), gatehouse.EConflict},
		{"no rows", pgx.ErrNoRows, gatehouse.ENotFound},
		{"connection_failure", pgErr("08006"), gatehouse.EUnavailable},
		{"admin_shutdown", pgErr("57P01"), gatehouse.EUnavailable},
		{"cannot_connect_now", pgErr("57P03"), gatehouse.EUnavailable},
		{"too_many_connections", pgErr("53300"), gatehouse.EUnavailable},
		{"connect error", &pgconn.ConnectError{}, gatehouse.EUnavailable},
		{"syntax_error", pgErr("42601"), gatehouse.EInternal},
		{"serialization_failure", pgErr("40001"), gatehouse.EInternal},
		{"foreign_key_violation", pgErr("23503"), gatehouse.EInternal},
		{"gatehouse error kept", fmt.Errorf("x: %w", ge), gatehouse.EPreconditionFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := postgres.MapErr("op", tc.err)
			if got := gatehouse.ErrorCode(err); got != tc.code {
				t.Errorf("code: got %q (err %v), want %q", got, err, tc.code)
			}
			if msg := gatehouse.ErrorMessage(err); strings.Contains(msg, "secret") || strings.Contains(msg, "Key (") {
				t.Errorf("user-safe message %q leaks driver text", msg)
			}
			// The cause stays in the chain, for logs and errors.Is/As.
			if !errors.Is(err, tc.err) {
				var pe *pgconn.PgError
				if !errors.As(err, &pe) && !errors.Is(err, pgx.ErrNoRows) {
					t.Errorf("cause lost from the chain: %v", err)
				}
			}
			if !strings.HasPrefix(err.Error(), "op: ") && tc.code != gatehouse.EPreconditionFailed {
				t.Errorf("error %q lacks the operation prefix", err)
			}
		})
	}
	if postgres.MapErr("op", nil) != nil {
		t.Error("MapErr(nil): got non-nil")
	}
}
