package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/store/postgres"
)

// TestCredentialQueriesUseIndexes does for the credential list queries what
// TestQueriesUseIndexes does for devices: every shape has an index path
// (sequential scans disabled), and on a few thousand analysed rows the
// planner picks the expected index for the selective ones: a device's
// credentials, those expiring soon, the revoked certificates.
func TestCredentialQueriesUseIndexes(t *testing.T) {
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	conn := planDatabase(t, `ANALYZE`, func(tx gatehouse.Tx, scope string) error {
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
	})

	soon := base.Add(3 * 24 * time.Hour)
	late := base.Add(300 * 24 * time.Hour)
	x509 := []gatehouse.CredentialKind{gatehouse.CredentialX509}
	revoked := []gatehouse.CredentialStatus{gatehouse.CredentialRevoked}
	active := []gatehouse.CredentialStatus{gatehouse.CredentialActive}
	// selective: the planner must pick an index on its own, and uses this one.
	credential := func(name string, f gatehouse.CredentialFilter, selective bool, uses string) planCase {
		f.Scope, f.Limit = "acme", 100
		query, args := postgres.ListCredentialsQuery(f)
		return planCase{name: name, query: query, args: args, selective: selective, uses: uses}
	}
	// One status and kind (the CRL's query) pages in index order.
	statusKind := credential("status-kind", gatehouse.CredentialFilter{Statuses: revoked, Kinds: x509}, true, "credentials_status_kind_idx")
	statusKind.inOrder = "one status and kind"
	checkPlans(t, conn, []string{"credentials"}, []planCase{
		credential("all", gatehouse.CredentialFilter{}, true, ""),
		credential("page", gatehouse.CredentialFilter{After: "8000000000000000"}, true, ""),
		credential("device", gatehouse.CredentialFilter{DeviceID: "dev-0042"}, true, "credentials_device_idx"),
		credential("device-status-kind", gatehouse.CredentialFilter{DeviceID: "dev-0042", Statuses: active, Kinds: x509}, true, "credentials_device_idx"),
		credential("device-expiring", gatehouse.CredentialFilter{DeviceID: "dev-0042", ExpiringBefore: &late}, true, ""),
		credential("expiring", gatehouse.CredentialFilter{ExpiringBefore: &soon}, true, "credentials_not_after_idx"),
		credential("expiring-active", gatehouse.CredentialFilter{ExpiringBefore: &soon, Statuses: active}, true, "credentials_not_after_idx"),
		credential("expiring-common", gatehouse.CredentialFilter{ExpiringBefore: &late}, false, ""),
		statusKind,
		credential("kinds", gatehouse.CredentialFilter{Kinds: []gatehouse.CredentialKind{gatehouse.CredentialSymmetricKey, gatehouse.CredentialToken}}, false, ""),
	})
}
