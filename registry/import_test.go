package registry_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// backends runs fn against a registry on each store: SQLite always,
// PostgreSQL when GATEHOUSE_TEST_POSTGRES is set (./scripts/test).
func backends(t *testing.T, fn func(t *testing.T, reg *registry.Service, admin *gatehouse.Principal)) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		reg := registry.New(st)
		ctx := context.Background()
		if err := reg.EnsureScope(ctx, gatehouse.DefaultScope); err != nil {
			t.Fatal(err)
		}
		grant, err := reg.CreateGlobalAdminToken(ctx, "admin")
		if err != nil {
			t.Fatal(err)
		}
		admin, err := reg.Authenticate(ctx, grant.Secret)
		if err != nil {
			t.Fatal(err)
		}
		fn(t, reg, admin)
	})
}

func runImport(t *testing.T, reg *registry.Service, p *gatehouse.Principal, mode registry.ImportMode, format registry.ImportFormat, body string) ([]registry.ImportResult, *registry.ImportSummary) {
	t.Helper()
	var got []registry.ImportResult
	sum, err := reg.ImportDevices(context.Background(), p, gatehouse.DefaultScope,
		registry.ImportRequest{Mode: mode, Format: format, Body: strings.NewReader(body)},
		func(rs []registry.ImportResult) error { got = append(got, rs...); return nil })
	if err != nil {
		t.Fatalf("ImportDevices: %v", err)
	}
	for _, r := range got {
		if !r.OK && r.Message == "" {
			t.Errorf("row %d: rejected (%s) without a message", r.Row, r.Code)
		}
	}
	return got, sum
}

var ignoreMessage = cmpopts.IgnoreFields(registry.ImportResult{}, "Message")

func ok(row int, id, status string) registry.ImportResult {
	return registry.ImportResult{Row: row, ID: id, OK: true, Status: status}
}

func bad(row int, id, code string) registry.ImportResult {
	return registry.ImportResult{Row: row, ID: id, Code: code}
}

func TestImportMixedCSV(t *testing.T) {
	backends(t, func(t *testing.T, reg *registry.Service, admin *gatehouse.Principal) {
		file := "id,state,tags.site,tags.model,config\n" +
			"dev-1,,berlin,t1,\"{\"\"n\"\":1}\"\n" + // 2
			"BAD ID,,berlin,t1,{}\n" + // 3
			"dev-2,active,paris,,\n" + // 4
			"dev-3,,x,y,[1]\n" + // 5: config is not an object
			"dev-4,sleeping,x,y,\n" + // 6: no such state
			"dev-1,,other,t1,\n" + // 7: duplicate
			"dev-5,,too,many,fields,here\n" + // 8
			"dev-6,,\xff\xfe,t1,\n" + // 9: not UTF-8
			"dev-7,,a,b,{}\n" // 10
		want := []registry.ImportResult{
			ok(2, "dev-1", "created"), bad(3, "BAD ID", gatehouse.EInvalidID), ok(4, "dev-2", "created"),
			bad(5, "dev-3", gatehouse.EInvalid), bad(6, "dev-4", gatehouse.EInvalid), bad(7, "dev-1", gatehouse.EConflict),
			bad(8, "dev-5", gatehouse.EInvalid), bad(9, "dev-6", gatehouse.EInvalid), ok(10, "dev-7", "created"),
		}
		got, sum := runImport(t, reg, admin, registry.ImportCreate, registry.ImportCSV, file)
		if diff := cmp.Diff(want, got, ignoreMessage); diff != "" {
			t.Errorf("results (-want +got):\n%s", diff)
		}
		wantSum := registry.ImportSummary{Rows: 9, OK: 3, Rejected: 6, Created: 3, Complete: true}
		if diff := cmp.Diff(wantSum, *sum); diff != "" {
			t.Errorf("summary (-want +got):\n%s", diff)
		}
		d, err := reg.GetDevice(context.Background(), admin, gatehouse.DefaultScope, "dev-1")
		if err != nil || d.Tags["site"] != "berlin" || string(d.Config) != `{"n":1}` || d.State != gatehouse.StateProvisioned {
			t.Errorf("dev-1: got %+v, %v", d, err)
		}
		if d, _ := reg.GetDevice(context.Background(), admin, gatehouse.DefaultScope, "dev-2"); d == nil || d.State != gatehouse.StateActive || len(d.Tags) != 1 {
			t.Errorf("dev-2: got %+v, want active with one tag", d)
		}
		evs, _ := reg.Events(context.Background(), admin, gatehouse.DefaultScope, 0, 1000)

		// The same file again: the same rows rejected, the others unchanged,
		// nothing written.
		for i := range want {
			if want[i].OK {
				want[i].Status = "unchanged"
			}
		}
		got, sum = runImport(t, reg, admin, registry.ImportCreate, registry.ImportCSV, file)
		if diff := cmp.Diff(want, got, ignoreMessage); diff != "" {
			t.Errorf("re-run results (-want +got):\n%s", diff)
		}
		if sum.Rejected != 6 || sum.Unchanged != 3 || sum.Created != 0 {
			t.Errorf("re-run summary: got %+v", sum)
		}
		evs2, _ := reg.Events(context.Background(), admin, gatehouse.DefaultScope, 0, 1000)
		if len(evs2) != len(evs) {
			t.Errorf("re-run appended %d events, want none", len(evs2)-len(evs))
		}
		if n := len(evs); n == 0 || evs[n-1].Type != registry.EventDevicesImported {
			t.Errorf("last event after the import: got %v, want %s", evs, registry.EventDevicesImported)
		}
	})
}

func TestImportBadFiles(t *testing.T) {
	backends(t, func(t *testing.T, reg *registry.Service, admin *gatehouse.Principal) {
		ctx := context.Background()
		for _, tc := range []struct {
			name, body string
			format     registry.ImportFormat
		}{
			{"empty", "", registry.ImportCSV},
			{"no id column", "name,tags.site\nx,y\n", registry.ImportCSV},
			{"unknown column", "id,colour\nx,red\n", registry.ImportCSV},
			{"column twice", "id,state,state\nx,active,active\n", registry.ImportCSV},
			{"bad tag key", "id,tags.a b\nx,y\n", registry.ImportCSV},
			{"unknown format", "id\nx\n", "xml"},
		} {
			_, err := reg.ImportDevices(ctx, admin, gatehouse.DefaultScope,
				registry.ImportRequest{Mode: registry.ImportCreate, Format: tc.format, Body: strings.NewReader(tc.body)},
				func([]registry.ImportResult) error { t.Errorf("%s: results emitted", tc.name); return nil })
			if gatehouse.ErrorCode(err) != gatehouse.EInvalid {
				t.Errorf("%s: got %v, want invalid", tc.name, err)
			}
		}

		// Cut off inside a quoted field: the rows before it stand.
		got, sum := runImport(t, reg, admin, registry.ImportCreate, registry.ImportCSV,
			"id,config\ncut-1,{}\ncut-2,\"{\"\"a\"\":")
		want := []registry.ImportResult{ok(2, "cut-1", "created"), bad(3, "", gatehouse.EInvalid)}
		if diff := cmp.Diff(want, got, ignoreMessage); diff != "" || !sum.Complete {
			t.Errorf("cut CSV (-want +got):\n%s (summary %+v)", diff, sum)
		}
		if !strings.Contains(got[1].Message, "cut off") {
			t.Errorf("cut CSV message %q does not say the file was cut off", got[1].Message)
		}

		// NDJSON: a bad line, unknown fields, an export's read-only fields,
		// blank lines, a last line cut off.
		got, _ = runImport(t, reg, admin, registry.ImportCreate, registry.ImportNDJSON,
			`{"id":"nd-1","tags":{"site":"a"},"config":{"x":1}}`+"\n"+
				`{"id":"nd-2","colour":"red"}`+"\n"+
				"\n"+
				`{"id":"nd-3","scope":"other","connection":{"status":"online"},"reported":{},"createdAt":"2020-01-01T00:00:00Z"}`+"\n"+
				`not json`+"\n"+
				`{"tags":{}}`+"\n"+
				`{"id":"nd-4","tags":{"si`)
		want = []registry.ImportResult{ok(1, "nd-1", "created"), bad(2, "", gatehouse.EUnknownField), ok(4, "nd-3", "created"),
			bad(5, "", gatehouse.EInvalidJSON), bad(6, "", gatehouse.EInvalid), bad(7, "", gatehouse.EInvalidJSON)}
		if diff := cmp.Diff(want, got, ignoreMessage); diff != "" {
			t.Errorf("NDJSON (-want +got):\n%s", diff)
		}
		if d, err := reg.GetDevice(ctx, admin, gatehouse.DefaultScope, "nd-1"); err != nil || d.Tags["site"] != "a" || string(d.Config) != `{"x":1}` {
			t.Errorf("nd-1: got %+v, %v", d, err)
		}

		// A viewer may not import; another scope is not found.
		if _, err := reg.ImportDevices(ctx, &gatehouse.Principal{TokenID: "v", Scope: gatehouse.DefaultScope, Role: gatehouse.RoleViewer}, gatehouse.DefaultScope,
			registry.ImportRequest{Mode: registry.ImportCreate, Format: registry.ImportCSV, Body: strings.NewReader("id\nx\n")}, nil); gatehouse.ErrorCode(err) != gatehouse.EForbidden {
			t.Errorf("viewer import: got %v, want forbidden", err)
		}
	})
}

func TestImportModes(t *testing.T) {
	backends(t, func(t *testing.T, reg *registry.Service, admin *gatehouse.Principal) {
		ctx := context.Background()
		// More rows than a batch, so that several transactions run.
		var b strings.Builder
		b.WriteString("id,tags.site,tags.n\n")
		n := registry.ImportBatchSize*2 + 17
		for i := range n {
			fmt.Fprintf(&b, "m-%05d,s%d,%d\n", i, i%3, i)
		}
		_, sum := runImport(t, reg, admin, registry.ImportCreate, registry.ImportCSV, b.String())
		if sum.Created != n || sum.Rows != n {
			t.Fatalf("create: got %+v, want %d created", sum, n)
		}
		page, err := reg.ListDevices(ctx, admin, gatehouse.DefaultScope, registry.DeviceQuery{Selectors: []gatehouse.TagSelector{{Key: "site", Op: gatehouse.SelEq, Values: []string{"s1"}}}, Limit: 1000})
		if err != nil || len(page.Items) != 672 {
			t.Errorf("tag query after import: got %d, %v; want 672", len(page.Items), err)
		}

		d1, _ := reg.GetDevice(ctx, admin, gatehouse.DefaultScope, "m-00001")
		// Create with other content: conflict. Update: tag changed, tag
		// removed by an empty cell, stale etag refused, missing device.
		got, _ := runImport(t, reg, admin, registry.ImportCreate, registry.ImportCSV, "id,tags.site\nm-00000,zzz\n")
		if diff := cmp.Diff([]registry.ImportResult{bad(2, "m-00000", gatehouse.EConflict)}, got, ignoreMessage); diff != "" {
			t.Errorf("create over a different device (-want +got):\n%s", diff)
		}
		file := "id,etag,state,tags.site,tags.n\n" +
			"m-00000,,active,new,\n" +
			"m-00001," + d1.ETag + ",,new,1\n" +
			"m-00002,stale,,new,2\n" +
			"m-00003,stale,,s0,3\n" + // no change: the etag is not checked
			"nope,,,x,\n" +
			"m-00004,,decommissioned,,\n"
		want := []registry.ImportResult{ok(2, "m-00000", "updated"), ok(3, "m-00001", "updated"), bad(4, "m-00002", gatehouse.EPreconditionFailed),
			ok(5, "m-00003", "unchanged"), bad(6, "nope", gatehouse.ENotFound), bad(7, "m-00004", gatehouse.EInvalidTransition)}
		got, _ = runImport(t, reg, admin, registry.ImportUpdate, registry.ImportCSV, file)
		if diff := cmp.Diff(want, got, ignoreMessage); diff != "" {
			t.Errorf("update (-want +got):\n%s", diff)
		}
		d0, _ := reg.GetDevice(ctx, admin, gatehouse.DefaultScope, "m-00000")
		if d0.State != gatehouse.StateActive || d0.Tags["site"] != "new" || d0.Tags["n"] != "" || len(d0.Tags) != 1 {
			t.Errorf("m-00000 after update: got %+v", d0)
		}
		if h, _ := reg.DeviceHistory(ctx, admin, gatehouse.DefaultScope, "m-00000"); len(h) != 2 {
			t.Errorf("m-00000 history: got %d entries, want 2", len(h))
		}

		// Upsert: creates the missing device, updates the other.
		got, _ = runImport(t, reg, admin, registry.ImportUpsert, registry.ImportNDJSON,
			`{"id":"m-00005","tags":{"only":"this"}}`+"\n"+`{"id":"fresh","config":{"a":1}}`+"\n")
		if diff := cmp.Diff([]registry.ImportResult{ok(1, "m-00005", "updated"), ok(2, "fresh", "created")}, got, ignoreMessage); diff != "" {
			t.Errorf("upsert (-want +got):\n%s", diff)
		}
		if d, _ := reg.GetDevice(ctx, admin, gatehouse.DefaultScope, "m-00005"); len(d.Tags) != 1 || d.Tags["only"] != "this" {
			t.Errorf("NDJSON tags replace the set: got %v", d.Tags)
		}

		// Delete: an active device is refused, a missing one is unchanged;
		// run twice, the same outcome.
		want = []registry.ImportResult{bad(2, "m-00000", gatehouse.EConflict), ok(3, "m-00006", "deleted"), ok(4, "ghost", "unchanged")}
		got, _ = runImport(t, reg, admin, registry.ImportDelete, registry.ImportCSV, "id\nm-00000\nm-00006\nghost\n")
		if diff := cmp.Diff(want, got, ignoreMessage); diff != "" {
			t.Errorf("delete (-want +got):\n%s", diff)
		}
		want[1].Status = "unchanged"
		got, _ = runImport(t, reg, admin, registry.ImportDelete, registry.ImportCSV, "id\nm-00000\nm-00006\nghost\n")
		if diff := cmp.Diff(want, got, ignoreMessage); diff != "" {
			t.Errorf("delete again (-want +got):\n%s", diff)
		}
	})
}
