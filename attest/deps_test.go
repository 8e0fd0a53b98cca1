package attest

import (
	"go/build"
	"strings"
	"testing"
)

// attest is pure: the standard library and the root package, nothing that
// does I/O on its own behalf (a database driver, a network client).
func TestDeps(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		first, _, _ := strings.Cut(imp, "/")
		if imp != "github.com/gatehouse-iot/gatehouse" && strings.Contains(first, ".") {
			t.Errorf("attest imports %s", imp)
		}
		if imp == "net" || imp == "net/http" || imp == "os" || imp == "database/sql" {
			t.Errorf("attest imports %s, which does I/O", imp)
		}
	}
}
