package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// jsonMode reports whether -o json was asked for.
func (a *app) jsonMode() bool { return a.output == "json" }

// printJSON writes v as one indented JSON document.
func (a *app) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err = a.stdout.Write(append(b, '\n'))
	return err
}

// table writes aligned columns; call flush when done.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cols ...string) {
	for i, c := range cols {
		// A tab or line break in a value (a tag, a reason) would break the
		// columns.
		cols[i] = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, c)
	}
	fmt.Fprintln(t.tw, strings.Join(cols, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// timeLayout is how tables show instants: UTC, to the second.
const timeLayout = "2006-01-02 15:04:05Z"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(timeLayout)
}

func fmtLastSeen(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return fmtTime(*t)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fmtTags renders tags as k=v pairs sorted by key.
func fmtTags(tags map[string]string) string {
	if len(tags) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		parts = append(parts, k+"="+tags[k])
	}
	return strings.Join(parts, ",")
}

func fmtJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "{}"
	}
	return string(gatehouse.CompactJSON(raw))
}

// printScopes prints scopes as a table.
func (a *app) printScopes(scopes ...*gatehouse.Scope) error {
	t := newTable(a.stdout, "ID", "CREATED")
	for _, s := range scopes {
		t.row(s.ID, fmtTime(s.CreatedAt))
	}
	return t.flush()
}

// printDevices prints devices as a table, one per row.
func (a *app) printDevices(devices []*gatehouse.Device) error {
	t := newTable(a.stdout, "ID", "STATE", "CONNECTION", "LAST SEEN", "TAGS")
	for _, d := range devices {
		t.row(d.ID, string(d.State), orDash(string(d.Connection.Status)), fmtLastSeen(d.Connection.LastSeen), fmtTags(d.Tags))
	}
	return t.flush()
}

// printDevice prints one device, or its JSON.
func (a *app) printDevice(d *gatehouse.Device) error {
	if a.jsonMode() {
		return a.printJSON(d)
	}
	t := newTable(a.stdout)
	t.row("ID:", d.ID)
	t.row("Scope:", d.Scope)
	t.row("State:", string(d.State))
	t.row("Connection:", orDash(string(d.Connection.Status)))
	t.row("Last seen:", fmtLastSeen(d.Connection.LastSeen))
	t.row("Tags:", fmtTags(d.Tags))
	t.row("Config:", fmtJSON(d.Config))
	t.row("Reported:", fmtJSON(d.Reported))
	if d.Enrollment != "" {
		t.row("Enrollment:", d.Enrollment)
	}
	t.row("ETag:", d.ETag)
	t.row("Created:", fmtTime(d.CreatedAt))
	t.row("Updated:", fmtTime(d.UpdatedAt))
	return t.flush()
}

// printEvents prints events as a table.
func (a *app) printEvents(events []*gatehouse.Event) error {
	t := newTable(a.stdout, "SEQ", "TIME", "TYPE", "SUBJECT", "ACTOR")
	for _, e := range events {
		t.row(fmt.Sprint(e.Seq), fmtTime(e.Time), e.Type, orDash(e.Subject), orDash(e.Actor))
	}
	return t.flush()
}

// Fixed columns of a followed event stream, which cannot wait for a
// tabwriter to see every row.
const (
	followHeader = "%-7s %-20s  %-22s %-32s %s\n"
	followRow    = "%-7d %-20s  %-22s %-32s %s\n"
)
