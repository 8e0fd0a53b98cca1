package ratelimit

import (
	"go/build"
	"strings"
	"testing"
)

// ratelimit needs nothing but the standard library.
func TestDeps(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
			t.Errorf("ratelimit imports %s", imp)
		}
	}
}
