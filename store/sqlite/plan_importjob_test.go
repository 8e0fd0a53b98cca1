package sqlite

import (
	"context"
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
			rows, err := s.readDB.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
			if err != nil {
				t.Fatalf("EXPLAIN: %v", err)
			}
			defer rows.Close()
			var lines []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				lines = append(lines, detail)
			}
			if plan := strings.Join(lines, "\n"); !strings.Contains(plan, tc.want) {
				t.Errorf("plan:\n%s\nwant it to use %s", plan, tc.want)
			}
		})
	}
}
