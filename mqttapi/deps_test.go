package mqttapi

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the front end off storage: it reaches data only through
// the Registry and Provisioner interfaces, never a store package or a database driver.
func TestDeps(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go tool in PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for dep := range strings.Lines(string(out)) {
		dep = strings.TrimSpace(dep)
		if dep == "database/sql/driver" {
			continue // interfaces only: the broker library's ID generator implements driver.Valuer
		}
		for _, banned := range []string{"github.com/gatehouse-iot/gatehouse/store", "database/sql", "modernc.org/sqlite", "github.com/jackc/pgx"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("mqttapi depends on %s", dep)
			}
		}
	}
}
