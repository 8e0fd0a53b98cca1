package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// TestImportJobLeaseQueryPlan: the sweeper's question (unfinished jobs with
// an old heartbeat) reads the partial index of unfinished jobs, not every
// job kept for the TTL; a node's own unfinished jobs come from its index.
func TestImportJobLeaseQueryPlan(t *testing.T) {
	s := MustOpen(t)
	for _, tc := range []struct {
		name string
		f    gatehouse.ImportJobFilter
		want string
	}{
		{"lapsed", gatehouse.ImportJobFilter{Unfinished: true, HeartbeatBefore: time.Now()}, "import_jobs_lease (heartbeat_at<?)"},
		{"node", gatehouse.ImportJobFilter{Node: "n1", Unfinished: true}, "import_jobs_node (node=? AND state=?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, args := importJobQuery(tc.f)
			if plan := explain(t, s, q, args...); !strings.Contains(plan, tc.want) {
				t.Errorf("plan:\n%s\nwant it to use %s", plan, tc.want)
			}
		})
	}
}
