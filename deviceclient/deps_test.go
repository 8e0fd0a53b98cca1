package deviceclient

import (
	"os/exec"
	"strings"
	"testing"
)

// The SDK runs on devices: it must never pull in a database driver or a
// server package.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	forbidden := []string{"database/sql", "modernc.org/sqlite", "github.com/jackc/pgx", "github.com/lib/pq", "github.com/mattn/go-sqlite3",
		"github.com/gatehouse-iot/gatehouse/store", "github.com/gatehouse-iot/gatehouse/registry", "github.com/gatehouse-iot/gatehouse/provision",
		"github.com/gatehouse-iot/gatehouse/server", "github.com/gatehouse-iot/gatehouse/secret"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("deviceclient depends on %s", dep)
			}
		}
	}
}
