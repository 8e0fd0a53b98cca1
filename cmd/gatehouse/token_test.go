package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

func TestTokenCommands(t *testing.T) {
	n := startNode(t)
	n.ok("scope", "create", "acme")

	// Table mode shows the token once, with a warning on stderr.
	r := n.gh("token", "create", "--scope", "acme", "--name", "ci", "--role", "viewer")
	if r.code != 0 {
		t.Fatalf("token create: %+v", r)
	}
	wantRows(t, "token create", r.stdout, `ID:\s+[a-z2-7]{16}`, `Scope:\s+acme`, `Name:\s+ci`, `Role:\s+viewer`, `Token:\s+gh_\S+`)
	if !strings.Contains(r.stderr, "will not be shown again") {
		t.Errorf("token create stderr = %q, want the not-shown-again note", r.stderr)
	}
	viewerToken := regexp.MustCompile(`gh_\S+`).FindString(r.stdout)
	viewerID := regexp.MustCompile(`ID:\s+(\S+)`).FindStringSubmatch(r.stdout)[1]

	var g struct {
		Token     string  `json:"token"`
		ID        string  `json:"id"`
		Scope     string  `json:"scope"`
		Name      string  `json:"name"`
		Role      string  `json:"role"`
		CreatedAt string  `json:"createdAt"`
		CreatedBy string  `json:"createdBy"`
		RevokedAt *string `json:"revokedAt"`
	}
	n.okJSON(&g, "token", "create", "--scope", "acme", "--name", "deployer", "--role", "operator")
	if !strings.HasPrefix(g.Token, "gh_") || g.Scope != "acme" || g.Role != "operator" || g.CreatedBy == "" {
		t.Errorf("token create -o json = %+v", g)
	}

	wantRows(t, "token list", n.ok("token", "list", "--scope", "acme"),
		`ID\s+NAME\s+ROLE\s+CREATED\s+CREATED BY\s+REVOKED`,
		`[a-z2-7]{16}\s+\S+\s+(viewer|operator)\s+`+ts+`\s+token:\S+\s+-`,
		`[a-z2-7]{16}\s+\S+\s+(viewer|operator)\s+`+ts+`\s+token:\S+\s+-`)

	// The viewer token works, for reading only.
	n.ok("device", "list", "--scope", "acme", "--token", viewerToken)
	r = n.gh("device", "create", "d1", "--scope", "acme", "--token", viewerToken)
	if r.code != 1 || !strings.Contains(r.stderr, "(forbidden)") {
		t.Errorf("device create as viewer: %+v", r)
	}

	if out := n.ok("token", "revoke", viewerID, "--scope", "acme"); out != "Revoked token "+viewerID+" in scope acme.\n" {
		t.Errorf("token revoke printed %q", out)
	}
	if out := n.ok("token", "revoke", g.ID, "--scope", "acme", "-o", "json"); out != "" {
		t.Errorf("token revoke -o json printed %q, want nothing (204)", out)
	}
	var list struct{ Items []*gatehouse.Token }
	n.okJSON(&list, "token", "list", "--scope", "acme")
	if len(list.Items) != 2 || list.Items[0].RevokedAt == nil || list.Items[1].RevokedAt == nil {
		t.Errorf("token list -o json after revoking = %+v", list.Items)
	}

	r = n.gh("scope", "list", "--token", viewerToken)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: invalid or revoked API token (unauthenticated)\n") || !strings.Contains(r.stderr, "--token") {
		t.Errorf("revoked token: %+v", r)
	}
	r = n.gh("token", "revoke", "aaaaaaaaaaaaaaaa", "--scope", "acme")
	if r.code != 1 || !strings.Contains(r.stderr, "(not_found)") {
		t.Errorf("revoke a missing token: %+v", r)
	}

	// Usage mistakes.
	for _, args := range [][]string{
		{"token", "create", "--name", "x"},
		{"token", "create", "--role", "admin"},
		{"token", "revoke"},
		{"token", "list", "extra"},
	} {
		if r := n.gh(args...); r.code != 2 || !strings.Contains(r.stderr, "--help") {
			t.Errorf("gatehouse %s: %+v, want exit 2 with a usage hint", strings.Join(args, " "), r)
		}
	}
	r = n.gh("token", "create", "--name", "x", "--role", "root")
	if r.code != 1 || !strings.Contains(r.stderr, "(invalid)") {
		t.Errorf("token create --role root: %+v", r)
	}
}
