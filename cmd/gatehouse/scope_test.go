package main

import (
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

// ts matches a time in a table.
const ts = `\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ`

func TestScopeCommands(t *testing.T) {
	n := startNode(t)

	wantRows(t, "scope create", n.ok("scope", "create", "acme"), `ID\s+CREATED`, `acme\s+`+ts)
	var sc gatehouse.Scope
	n.okJSON(&sc, "scope", "create", "globex")
	if sc.ID != "globex" || sc.CreatedAt.IsZero() {
		t.Errorf("scope create -o json = %+v", sc)
	}

	wantRows(t, "scope list", n.ok("scope", "list"), `ID\s+CREATED`, `acme\s+`+ts, `default\s+`+ts, `globex\s+`+ts)
	var list struct{ Items []gatehouse.Scope }
	n.okJSON(&list, "scope", "list")
	if len(list.Items) != 3 || list.Items[0].ID != "acme" {
		t.Errorf("scope list -o json = %+v", list)
	}

	wantRows(t, "scope get", n.ok("scope", "get", "acme"), `ID\s+CREATED`, `acme\s+`+ts)
	n.okJSON(&sc, "scope", "get", "default")
	if sc.ID != "default" {
		t.Errorf("scope get -o json = %+v", sc)
	}

	r := n.gh("scope", "create", "acme")
	if r.code != 1 || r.stderr != "error: scope \"acme\" already exists (conflict)\n" || r.stdout != "" {
		t.Errorf("scope create twice: %+v", r)
	}
}
