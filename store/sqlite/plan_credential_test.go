package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// credentialPlan returns the EXPLAIN QUERY PLAN of the filter's query.
func credentialPlan(t *testing.T, s *Store, f gatehouse.CredentialFilter) string {
	t.Helper()
	query, args := credentialQuery(f)
	return explain(t, s, query, args...)
}

// TestCredentialQueryPlan checks which index answers each credential query
// shape. None may scan the table; only the expiring queries may sort, and
// then only the rows the not_after range matched.
func TestCredentialQueryPlan(t *testing.T) {
	s := MustOpen(t)
	soon := time.Now().Add(14 * 24 * time.Hour)
	x509 := []gatehouse.CredentialKind{gatehouse.CredentialX509}
	revoked := []gatehouse.CredentialStatus{gatehouse.CredentialRevoked}
	for _, tc := range []struct {
		name    string
		f       gatehouse.CredentialFilter
		want    string // must appear in the plan
		maySort bool
	}{
		{"none", gatehouse.CredentialFilter{}, "USING INDEX sqlite_autoindex_credentials_1 (scope=? AND id>?)", false},
		{"device", gatehouse.CredentialFilter{DeviceID: "d1"}, "credentials_device (scope=? AND device_id=? AND id>?)", false},
		{"device-status-kind", gatehouse.CredentialFilter{DeviceID: "d1", Statuses: revoked, Kinds: x509}, "credentials_device (scope=? AND device_id=? AND id>?)", false},
		{"device-expiring", gatehouse.CredentialFilter{DeviceID: "d1", ExpiringBefore: &soon}, "credentials_device (scope=? AND device_id=? AND id>?)", false},
		{"expiring", gatehouse.CredentialFilter{ExpiringBefore: &soon}, "credentials_not_after (scope=? AND not_after<?)", true},
		{"expiring-status", gatehouse.CredentialFilter{ExpiringBefore: &soon, Statuses: []gatehouse.CredentialStatus{gatehouse.CredentialActive}}, "credentials_not_after (scope=? AND not_after<?)", true},
		{"expiring-status-kind", gatehouse.CredentialFilter{ExpiringBefore: &soon, Statuses: revoked, Kinds: x509}, "credentials_not_after (scope=? AND not_after<?)", true},
		{"status-kind", gatehouse.CredentialFilter{Statuses: revoked, Kinds: x509}, "credentials_status_kind (scope=? AND status=? AND kind=? AND id>?)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.Scope, f.Limit = "acme", 100
			plan := credentialPlan(t, s, f)
			t.Logf("plan:\n%s", plan)
			if !strings.Contains(plan, tc.want) {
				t.Errorf("plan: got\n%s\nwant it to mention %q", plan, tc.want)
			}
			for _, line := range strings.Split(plan, "\n") {
				if strings.HasPrefix(line, "SCAN ") {
					t.Errorf("plan has a full scan: %q", line)
				}
				if strings.Contains(line, "TEMP B-TREE") && !tc.maySort {
					t.Errorf("plan sorts: %q; pages must come in index order", line)
				}
			}
		})
	}
	// DeviceCredentials, in the writer's Tx.
	plan := explain(t, s, `SELECT `+credentialColumns+` FROM credentials WHERE scope = ? AND device_id = ? ORDER BY id`, "acme", "d1")
	if !strings.Contains(plan, "credentials_device (scope=? AND device_id=?)") || strings.Contains(plan, "TEMP B-TREE") {
		t.Errorf("DeviceCredentials plan: got\n%s\nwant credentials_device in ID order", plan)
	}
}
