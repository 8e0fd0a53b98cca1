package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func TestDeviceCommands(t *testing.T) {
	n := startNode(t)

	// create, table and JSON.
	out := n.ok("device", "create", "sensor-1", "--tag", "site=berlin", "--tag", "model=t1,rev2", "--config", `{"interval": 60}`)
	wantRows(t, "device create", out,
		`ID:\s+sensor-1`, `Scope:\s+default`, `State:\s+provisioned`, `Connection:\s+offline`, `Last seen:\s+never`,
		`Tags:\s+model=t1,rev2,site=berlin`, `Config:\s+\{"interval":60\}`, `Reported:\s+\{\}`,
		`ETag:\s+[0-9a-f]{24}`, `Created:\s+`+ts, `Updated:\s+`+ts)
	cfgFile := filepath.Join(t.TempDir(), "cfg.json")
	os.WriteFile(cfgFile, []byte(`{"interval": 30}`), 0o644)
	var d gatehouse.Device
	n.okJSON(&d, "device", "create", "sensor-2", "--tag", "site=paris", "--config", "@"+cfgFile)
	if d.ID != "sensor-2" || d.Scope != "default" || d.State != gatehouse.StateProvisioned || d.Tags["site"] != "paris" || compact(d.Config) != `{"interval":30}` {
		t.Errorf("device create -o json = %+v", d)
	}
	n.ok("scope", "create", "acme")
	n.ok("device", "create", "other", "--scope", "acme")

	// get.
	wantRows(t, "device get", n.ok("device", "get", "sensor-2"),
		`ID:\s+sensor-2`, `Scope:\s+default`, `State:\s+provisioned`, `Connection:\s+offline`, `Last seen:\s+never`,
		`Tags:\s+site=paris`, `Config:\s+\{"interval":30\}`, `Reported:\s+\{\}`, `ETag:\s+`+d.ETag, `Created:\s+`+ts, `Updated:\s+`+ts)
	var got gatehouse.Device
	n.okJSON(&got, "device", "get", "other", "--scope", "acme")
	if got.ID != "other" || got.Scope != "acme" {
		t.Errorf("device get --scope acme -o json = %+v", got)
	}

	// list, filters, pages.
	for _, id := range []string{"d-1", "d-2", "d-3"} {
		n.ok("device", "create", id, "--tag", "batch=a")
	}
	wantRows(t, "device list", n.ok("device", "list"),
		`ID\s+STATE\s+CONNECTION\s+LAST SEEN\s+TAGS`,
		`d-1\s+provisioned\s+offline\s+never\s+batch=a`,
		`d-2\s+provisioned\s+offline\s+never\s+batch=a`,
		`d-3\s+provisioned\s+offline\s+never\s+batch=a`,
		`sensor-1\s+provisioned\s+offline\s+never\s+model=t1,rev2,site=berlin`,
		`sensor-2\s+provisioned\s+offline\s+never\s+site=paris`)
	ids := func(args ...string) string {
		t.Helper()
		var page registry.DevicePage
		n.okJSON(&page, append([]string{"device", "list"}, args...)...)
		var ids []string
		for _, d := range page.Items {
			ids = append(ids, d.ID)
		}
		return strings.Join(ids, ",") + "|" + page.NextCursor
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--tag", "site"}, "sensor-1,sensor-2|"},
		{[]string{"--tag", "site in (paris, rome)"}, "sensor-2|"},
		{[]string{"--tag", "!batch", "--tag", "site!=paris"}, "sensor-1|"},
		{[]string{"--state", "provisioned,active", "--connection", "offline", "--tag", "batch=a"}, "d-1,d-2,d-3|"},
		{[]string{"--state", "active"}, "|"},
		{[]string{"--connection", "online"}, "|"},
		{[]string{"--limit", "4", "--all"}, "d-1,d-2,d-3,sensor-1,sensor-2|"},
		{[]string{"--scope", "acme"}, "other|"},
		// No device here has been seen, and none came from an enrollment.
		{[]string{"--last-seen-before", "2100-01-01T00:00:00Z"}, "|"},
		{[]string{"--last-seen-after", "24h", "--tag", "batch=a"}, "|"},
		{[]string{"--enrollment", "enr-x"}, "|"},
	} {
		if got := ids(tt.args...); got != tt.want {
			t.Errorf("device list %s = %q, want %q", strings.Join(tt.args, " "), got, tt.want)
		}
	}
	first := ids("--limit", "2")
	cursor := first[strings.Index(first, "|")+1:]
	if !strings.HasPrefix(first, "d-1,d-2|") || cursor == "" {
		t.Fatalf("device list --limit 2 = %q", first)
	}
	if got := ids("--limit", "2", "--cursor", cursor); !strings.HasPrefix(got, "d-3,sensor-1|") {
		t.Errorf("device list --cursor = %q", got)
	}
	r := n.gh("device", "list", "--limit", "2")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stderr, "--cursor "+cursor) {
		t.Errorf("device list --limit 2 (table): %+v, want two rows and a --cursor hint", r)
	}

	// patch.
	etag := regexp.MustCompile(`ETag:\s+(\S+)`).FindStringSubmatch(n.ok("device", "get", "sensor-1"))[1]
	out = n.ok("device", "patch", "sensor-1", "--tag", "site=munich", "--untag", "model", "--config", `{"interval":null,"debug":true}`, "--if-match", etag)
	if !regexp.MustCompile(`(?m)^Tags:\s+site=munich$`).MatchString(out) || !regexp.MustCompile(`(?m)^Config:\s+\{"debug":true\}$`).MatchString(out) {
		t.Errorf("device patch printed:\n%s", out)
	}
	r = n.gh("device", "patch", "sensor-1", "--tag", "x=y", "--if-match", etag)
	if r.code != 1 || !strings.Contains(r.stderr, "has changed since you read it") || !strings.HasSuffix(r.stderr, "(precondition_failed)\n") {
		t.Errorf("device patch with a stale etag: %+v", r)
	}
	d = gatehouse.Device{}
	n.okJSON(&d, "device", "patch", "sensor-1", "--untag", "site")
	if len(d.Tags) != 0 || compact(d.Config) != `{"debug":true}` {
		t.Errorf("device patch -o json = %+v", d)
	}

	// set-state and history.
	out = n.ok("device", "set-state", "sensor-1", "active", "--reason", "commissioned", "--if-match", d.ETag)
	if !regexp.MustCompile(`(?m)^State:\s+active$`).MatchString(out) {
		t.Errorf("device set-state printed:\n%s", out)
	}
	n.okJSON(&d, "device", "set-state", "sensor-1", "quarantined", "--reason", "tamper alarm")
	if d.State != gatehouse.StateQuarantined {
		t.Errorf("device set-state -o json = %+v", d)
	}
	r = n.gh("device", "set-state", "sensor-1", "provisioned")
	if r.code != 1 || !strings.HasSuffix(r.stderr, "(invalid_transition)\n") {
		t.Errorf("device set-state back to provisioned: %+v", r)
	}
	r = n.gh("device", "set-state", "sensor-1", "active", "--if-match", "stale")
	if r.code != 1 || !strings.HasSuffix(r.stderr, "(precondition_failed)\n") {
		t.Errorf("device set-state with a stale etag: %+v", r)
	}
	wantRows(t, "device history", n.ok("device", "history", "sensor-1"),
		`TIME\s+FROM\s+TO\s+ACTOR\s+REASON`,
		ts+`\s+-\s+provisioned\s+token:\S+\s+created`,
		ts+`\s+provisioned\s+active\s+token:\S+\s+commissioned`,
		ts+`\s+active\s+quarantined\s+token:\S+\s+tamper alarm`)
	var h struct{ Items []gatehouse.StateChange }
	n.okJSON(&h, "device", "history", "sensor-1")
	if len(h.Items) != 3 || h.Items[2].To != gatehouse.StateQuarantined || h.Items[2].Reason != "tamper alarm" {
		t.Errorf("device history -o json = %+v", h.Items)
	}

	// delete.
	if out := n.ok("device", "delete", "d-1"); out != "Deleted device d-1 from scope default.\n" {
		t.Errorf("device delete printed %q", out)
	}
	if out := n.ok("device", "delete", "other", "--scope", "acme", "-o", "json"); out != "" {
		t.Errorf("device delete -o json printed %q, want nothing (204)", out)
	}
	etag = regexp.MustCompile(`ETag:\s+(\S+)`).FindStringSubmatch(n.ok("device", "get", "d-2"))[1]
	if r := n.gh("device", "delete", "d-2", "--if-match", "stale"); r.code != 1 || !strings.Contains(r.stderr, "(precondition_failed)") {
		t.Errorf("device delete with a stale etag: %+v", r)
	}
	n.ok("device", "delete", "d-2", "--if-match", etag)
	r = n.gh("device", "get", "d-1")
	if want := "error: device \"d-1\" not found in scope \"default\" (not_found)\n"; r.code != 1 || r.stderr != want || r.stdout != "" {
		t.Errorf("device get of a deleted device: %+v, want exit 1 and %q", r, want)
	}
	r = n.gh("device", "create", "Bad ID")
	if r.code != 1 || !strings.HasSuffix(r.stderr, "(invalid_id)\n") {
		t.Errorf("device create with a bad id: %+v", r)
	}
	r = n.gh("device", "list", "--tag", "site in")
	if r.code != 1 || !strings.HasSuffix(r.stderr, "(invalid_selector)\n") {
		t.Errorf("device list with a bad selector: %+v", r)
	}
}

func TestDeviceUsageErrors(t *testing.T) {
	n := startNode(t)
	for _, tt := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"device", "create"}, "missing ID"},
		{[]string{"device", "create", "a", "b"}, "too many arguments"},
		{[]string{"device", "create", "a", "--tag", "novalue"}, `--tag "novalue" is not key=value`},
		{[]string{"device", "create", "a", "--tag", "k=1", "--tag", "k=2"}, `tag "k" is given twice`},
		{[]string{"device", "create", "a", "--config", "{nope"}, "--config is not valid JSON"},
		{[]string{"device", "create", "a", "--config", "@/does/not/exist.json"}, "--config: open /does/not/exist.json"},
		{[]string{"device", "patch", "a"}, "nothing to change"},
		{[]string{"device", "patch", "a", "--tag", "k=v", "--untag", "k"}, "both set"},
		{[]string{"device", "set-state", "a"}, "missing STATE"},
		{[]string{"device", "list", "--limit", "x"}, `invalid argument "x" for "--limit"`},
		{[]string{"device", "list", "--limit", "-1"}, "--limit must be positive"},
		{[]string{"device", "list", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"device", "list", "--last-seen-before", "soon"}, "--last-seen-before must be an RFC 3339 time"},
		{[]string{"device", "list", "--last-seen-after", "-1h"}, "--last-seen-after must be an RFC 3339 time"},
		{[]string{"device", "frob"}, `unknown command "frob" for "gatehouse device"`},
		{[]string{"device", "get", "a", "-o", "yaml"}, `--output must be table or json, not "yaml"`},
		{[]string{"frob"}, `unknown command "frob" for "gatehouse"`},
	} {
		r := n.gh(tt.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "--help' for usage") || r.stdout != "" {
			t.Errorf("gatehouse %s: %+v, want exit 2, %q and a usage hint", strings.Join(tt.args, " "), r, tt.want)
		}
	}
	// A group without a subcommand prints its help and exits 2.
	for _, g := range []string{"device", "scope", "token"} {
		if r := n.gh(g); r.code != 2 || !strings.Contains(r.stderr, "Available Commands") {
			t.Errorf("gatehouse %s: %+v, want exit 2 with help", g, r)
		}
	}
	if r := n.gh(); r.code != 2 || !strings.Contains(r.stderr, "Available Commands") {
		t.Errorf("gatehouse: %+v, want exit 2 with help", r)
	}
	// --help itself is no error.
	if r := n.gh("device", "list", "--help"); r.code != 0 || !strings.Contains(r.stdout, "--tag") {
		t.Errorf("device list --help: %+v", r)
	}
}

func compact(raw json.RawMessage) string { return string(gatehouse.CompactJSON(raw)) }

// TestPatchBody checks the merge patch the flags become.
func TestPatchBody(t *testing.T) {
	for _, tt := range []struct {
		tags, untags []string
		config       string
		want         string
	}{
		{[]string{"a=1", "b="}, nil, "", `{"tags":{"a":"1","b":""}}`},
		{nil, []string{"a"}, "", `{"tags":{"a":null}}`},
		{[]string{"a=x=y"}, []string{"b"}, `{"k": null}`, `{"config":{"k":null},"tags":{"a":"x=y","b":null}}`},
		{nil, nil, `null`, `{"config":null}`},
	} {
		got, err := buildPatch(tt.tags, tt.untags, tt.config)
		if err != nil || string(got) != tt.want {
			t.Errorf("buildPatch(%q, %q, %q) = %s, %v; want %s", tt.tags, tt.untags, tt.config, got, err, tt.want)
		}
		if !json.Valid(got) {
			t.Errorf("invalid JSON %s", got)
		}
	}
}
