package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

func TestEventsCommand(t *testing.T) {
	n := startNode(t)
	n.ok("device", "create", "a")
	n.ok("device", "create", "b")

	wantRows(t, "events", n.ok("events"),
		`SEQ\s+TIME\s+TYPE\s+SUBJECT\s+ACTOR`,
		`1\s+`+ts+`\s+scope.created\s+scopes/default\s+system`,
		`2\s+`+ts+`\s+ca.created\s+scopes/default/ca\s+system`,
		`3\s+`+ts+`\s+device.created\s+devices/a\s+token:\S+`,
		`4\s+`+ts+`\s+device.created\s+devices/b\s+token:\S+`)
	var list struct{ Items []gatehouse.Event }
	n.okJSON(&list, "events", "--after", "2", "--limit", "1")
	if len(list.Items) != 1 || list.Items[0].Seq != 3 || list.Items[0].Type != gatehouse.EventDeviceCreated {
		t.Errorf("events --after 2 --limit 1 -o json = %+v", list.Items)
	}
	r := n.gh("events", "--limit", "2")
	if r.code != 0 || !strings.Contains(r.stderr, "--after 2") {
		t.Errorf("events --limit 2: %+v, want a hint to continue --after 2", r)
	}
	r = n.gh("events", "--scope", "nope")
	if r.code != 1 || r.stderr != "error: scope \"nope\" not found (not_found)\n" {
		t.Errorf("events --scope nope: %+v", r)
	}
	for _, args := range [][]string{{"events", "--follow", "--limit", "5"}, {"events", "--after", "-1"}, {"events", "extra"}} {
		if r := n.gh(args...); r.code != 2 {
			t.Errorf("gatehouse %s: %+v, want exit 2", strings.Join(args, " "), r)
		}
	}
}

func TestEventsFollow(t *testing.T) {
	for _, mode := range []string{"table", "json"} {
		t.Run(mode, func(t *testing.T) {
			n := startNode(t)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			var stdout, stderr syncBuffer
			done := make(chan int, 1)
			go func() {
				done <- runEnv(ctx, []string{"events", "--follow", "--after", "2", "-o", mode},
					func(k string) string { return n.env[k] }, &stdout, &stderr)
			}()

			n.ok("device", "create", "live-1")
			for !strings.Contains(stdout.String(), "devices/live-1") {
				select {
				case code := <-done:
					t.Fatalf("events --follow ended early: exit %d\n%s%s", code, stdout.String(), stderr.String())
				case <-ctx.Done():
					t.Fatalf("no event within the timeout; output so far:\n%s%s", stdout.String(), stderr.String())
				case <-time.After(10 * time.Millisecond):
				}
			}
			cancel() // as Ctrl-C does
			if code := <-done; code != 0 {
				t.Errorf("events --follow exit %d after cancelling, want 0; stderr %s", code, stderr.String())
			}

			out := stdout.String()
			if mode == "table" {
				wantRows(t, "events --follow", out,
					`SEQ\s+TIME\s+TYPE\s+SUBJECT\s+ACTOR`,
					`3\s+`+ts+`\s+device.created\s+devices/live-1\s+token:\S+`)
				return
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 1 {
				t.Fatalf("NDJSON output has %d lines, want 1:\n%s", len(lines), out)
			}
			var e gatehouse.Event
			if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Seq != 3 || e.Subject != "devices/live-1" {
				t.Errorf("NDJSON line %q: %+v, %v", lines[0], e, err)
			}
		})
	}
}
