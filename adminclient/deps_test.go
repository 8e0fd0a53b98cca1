package adminclient

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the client light: tools and tests that talk to a server
// must not drag in its storage, its HTTP handlers or a database driver.
// (The registry's request and response types bring in the pure crypto
// packages ca and secret; those hold no state and open no database.)
func TestDeps(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{
		"github.com/gatehouse-iot/gatehouse/store",
		"github.com/gatehouse-iot/gatehouse/server",
		"github.com/gatehouse-iot/gatehouse/httpapi",
		"modernc.org/sqlite",
		"github.com/jackc/pgx",
		"database/sql",
	}
	for dep := range strings.FieldsSeq(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("adminclient depends on %s", dep)
			}
		}
	}
}
