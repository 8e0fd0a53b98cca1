package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
	"github.com/jackc/pgx/v5"
)

// TestCredentialQueriesUseIndexes does for the credential list queries what
// TestQueriesUseIndexes does for devices: every shape has an index path
// (sequential scans disabled), and on a few thousand analysed rows the
// planner picks the expected index for the selective ones: a device's
// credentials, those expiring soon, the revoked certificates.
func TestCredentialQueriesUseIndexes(t *testing.T) {
	dsn := newDatabase(t)
	s := mustOpen(t, dsn)
	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, scope := range []string{"acme", "other"} {
		if err := s.Update(ctx, func(tx gatehouse.Tx) error {
			if err := tx.CreateScope(&gatehouse.Scope{ID: scope, CreatedAt: ts()}); err != nil {
				return err
			}
			for i := range 4000 {
				c := &gatehouse.Credential{
					ID: fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15), Scope: scope, DeviceID: fmt.Sprintf("dev-%04d", i%400),
					Kind: gatehouse.CredentialX509, Status: gatehouse.CredentialActive, CreatedAt: ts(),
					CertDER: make([]byte, 600),
				}
				// notAfter spread over a year; one in 100 revoked; one in
				// ten a symmetric key without notAfter.
				na := base.Add(time.Duration(i%365) * 24 * time.Hour)
				c.NotAfter = &na
				if i%4 == 1 {
					c.Status = gatehouse.CredentialSuperseded
				}
				if i%100 == 7 {
					c.Status = gatehouse.CredentialRevoked
				}
				if i%10 == 3 {
					c.Kind, c.NotAfter, c.Slot = gatehouse.CredentialSymmetricKey, nil, "primary"
				}
				if err := tx.CreateCredential(c); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("create credentials: %v", err)
		}
	}
	conn := connect(t, dsn)
	if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}

	soon := base.Add(3 * 24 * time.Hour)
	late := base.Add(300 * 24 * time.Hour)
	x509 := []gatehouse.CredentialKind{gatehouse.CredentialX509}
	revoked := []gatehouse.CredentialStatus{gatehouse.CredentialRevoked}
	active := []gatehouse.CredentialStatus{gatehouse.CredentialActive}
	tests := []struct {
		name      string
		f         gatehouse.CredentialFilter
		selective bool   // the planner must pick an index on its own
		uses      string // and this one
	}{
		{"all", gatehouse.CredentialFilter{}, true, ""},
		{"page", gatehouse.CredentialFilter{After: "8000000000000000"}, true, ""},
		{"device", gatehouse.CredentialFilter{DeviceID: "dev-0042"}, true, "credentials_device_idx"},
		{"device-status-kind", gatehouse.CredentialFilter{DeviceID: "dev-0042", Statuses: active, Kinds: x509}, true, "credentials_device_idx"},
		{"device-expiring", gatehouse.CredentialFilter{DeviceID: "dev-0042", ExpiringBefore: &late}, true, ""},
		{"expiring", gatehouse.CredentialFilter{ExpiringBefore: &soon}, true, "credentials_not_after_idx"},
		{"expiring-active", gatehouse.CredentialFilter{ExpiringBefore: &soon, Statuses: active}, true, "credentials_not_after_idx"},
		{"expiring-common", gatehouse.CredentialFilter{ExpiringBefore: &late}, false, ""},
		{"status-kind", gatehouse.CredentialFilter{Statuses: revoked, Kinds: x509}, true, "credentials_status_kind_idx"},
		{"kinds", gatehouse.CredentialFilter{Kinds: []gatehouse.CredentialKind{gatehouse.CredentialSymmetricKey, gatehouse.CredentialToken}}, false, ""},
	}
	explain := func(t *testing.T, f gatehouse.CredentialFilter) string {
		t.Helper()
		f.Scope, f.Limit = "acme", 100
		query, args := postgres.ListCredentialsQuery(f)
		rows, err := conn.Query(ctx, "EXPLAIN "+query, args...)
		if err != nil {
			t.Fatalf("EXPLAIN: %v", err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("EXPLAIN: %v", err)
		}
		return strings.Join(lines, "\n")
	}
	check := func(t *testing.T, plan string) {
		t.Helper()
		if strings.Contains(plan, "Seq Scan on credentials ") {
			t.Errorf("plan reads credentials sequentially:\n%s", plan)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
				t.Fatal(err)
			}
			check(t, explain(t, tc.f))
			if _, err := conn.Exec(ctx, `RESET enable_seqscan`); err != nil {
				t.Fatal(err)
			}
			plan := explain(t, tc.f)
			if testing.Verbose() {
				t.Logf("plan:\n%s", plan)
			}
			if tc.selective {
				check(t, plan)
			}
			if tc.uses != "" && !strings.Contains(plan, " "+tc.uses+" ") {
				t.Errorf("plan does not use %s:\n%s", tc.uses, plan)
			}
			// One status and kind (the CRL's query) pages in index order.
			if tc.name == "status-kind" && strings.Contains(plan, "Sort") {
				t.Errorf("plan sorts; one status and kind should come in index order:\n%s", plan)
			}
		})
	}
}
