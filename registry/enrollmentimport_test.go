package registry_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
	"github.com/google/go-cmp/cmp"
)

func runEnrollmentImport(t *testing.T, reg *registry.Service, p *gatehouse.Principal, mode registry.ImportMode, format registry.ImportFormat, body io.Reader) ([]registry.ImportResult, *registry.ImportSummary) {
	t.Helper()
	var got []registry.ImportResult
	sum, err := reg.ImportEnrollments(context.Background(), p, gatehouse.DefaultScope,
		registry.ImportRequest{Mode: mode, Format: format, Body: body},
		func(rs []registry.ImportResult) error { got = append(got, rs...); return nil })
	if err != nil {
		t.Fatalf("ImportEnrollments: %v", err)
	}
	for _, r := range got {
		if !r.OK && r.Message == "" {
			t.Errorf("row %d: rejected (%s) without a message", r.Row, r.Code)
		}
	}
	return got, sum
}

// secretKey returns a fresh base64 key of n bytes.
func secretKey(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// deviceCertPEM is a self-signed certificate with the given CN.
func deviceCertPEM(t *testing.T, cn string) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), hex.EncodeToString(sum[:])
}

// csvFile writes rows (the first is the header) as CSV.
func csvFile(t *testing.T, rows [][]string) string {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if err := w.WriteAll(rows); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// noSecrets fails if out holds any of the secrets, in any usual encoding.
func noSecrets(t *testing.T, what string, out []byte, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		forms := []string{s}
		if raw, err := base64.StdEncoding.DecodeString(s); err == nil {
			forms = append(forms, hex.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw))
		}
		sum := sha256.Sum256([]byte(s))
		forms = append(forms, hex.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(sum[:]))
		for _, f := range forms {
			// JSON escapes '/' and '+' never; "<", ">", "&" are not in these.
			if bytes.Contains(out, []byte(f)) {
				t.Errorf("%s holds a secret (%.6s...)", what, f)
			}
		}
	}
}

var enrollmentHeader = []string{"id", "attestation", "primaryKey", "secondaryKey", "certificate", "thumbprint", "token", "tokenMaxUses",
	"enabled", "deviceId", "allocation", "endpoints", "config", "tags.site", "type"}

func TestImportEnrollmentsMixed(t *testing.T) {
	sealedBackends(t, func(t *testing.T, newReg func() *registry.Service, admin *gatehouse.Principal) {
		reg := newReg()
		ctx := context.Background()
		pk1, sk1, pk3, badKey := secretKey(32), secretKey(32), secretKey(64), "not base64 but a long secret-looking value !!"
		tok := "tok-" + secretKey(24)
		shortTok := "short-tok-12"
		certPEM, thumb := deviceCertPEM(t, "reg-cert")
		_, otherThumb := deviceCertPEM(t, "reg-cert")
		wrongCN, _ := deviceCertPEM(t, "someone-else")
		rows := [][]string{enrollmentHeader,
			{"reg-sym", "symmetric_key", pk1, sk1, "", "", "", "", "", "dev-sym", "", "", `{"a":1}`, "berlin", ""}, // 2
			{"reg-thumb", "x509", "", "", "", thumb, "", "", "false", "", "", "", "", "", "individual"},            // 3
			{"reg-tok", "token", "", "", "", "", tok, "3", "", "", "hashed", "a.example:8883=2;b.example:8883", "", "", ""},
			{"reg-nokey", "symmetric_key", "", "", "", "", "", "", "", "", "", "", "", "", ""},        // 5: no key
			{"BAD ID", "symmetric_key", pk1, "", "", "", "", "", "", "", "", "", "", "", ""},          // 6
			{"reg-badkey", "symmetric_key", badKey, "", "", "", "", "", "", "", "", "", "", "", ""},   // 7
			{"reg-sym", "symmetric_key", pk3, "", "", "", "", "", "", "", "", "", "", "", ""},         // 8: duplicate
			{"reg-shorttok", "token", "", "", "", "", shortTok, "", "", "", "", "", "", "", ""},       // 9
			{"reg-group", "x509", "", "", "", thumb, "", "", "", "", "", "", "", "", "group"},         // 10
			{"reg-cert", "x509", "", "", certPEM, thumb, "", "", "", "", "", "", "", "", ""},          // 11: PEM over lines
			{"reg-cn", "x509", "", "", wrongCN, "", "", "", "", "", "", "", "", "", ""},               // 12+: CN mismatch
			{"reg-mismatch", "x509", "", "", certPEM, otherThumb, "", "", "", "", "", "", "", "", ""}, // thumbprint not the cert's
			{"reg-stray", "x509", pk1, "", "", thumb, "", "", "", "", "", "", "", "", ""},             // a key on x509
			{"reg-noatt", "", "", "", "", "", "", "", "", "", "", "", "", "", ""},                     // no attestation
			{"reg-sym3", "symmetric_key", pk3, "", "", "", "", "", "", "", "custom", "", "", "", ""},  // custom without webhook
		}
		file := csvFile(t, rows)
		// A PEM cell spans lines (its last ends the PEM), so the rows after
		// one start further down.
		pemLines := strings.Count(certPEM, "\n")
		cn := 12 + pemLines
		wrongLines := strings.Count(wrongCN, "\n")
		want := []registry.ImportResult{
			ok(2, "reg-sym", "created"), ok(3, "reg-thumb", "created"), ok(4, "reg-tok", "created"),
			bad(5, "reg-nokey", gatehouse.EInvalid), bad(6, "", gatehouse.EInvalidID), bad(7, "reg-badkey", gatehouse.EInvalid),
			bad(8, "reg-sym", gatehouse.EConflict), bad(9, "reg-shorttok", gatehouse.EInvalid), bad(10, "reg-group", gatehouse.EInvalid),
			ok(11, "reg-cert", "created"), bad(cn, "reg-cn", gatehouse.EInvalid),
			bad(cn+wrongLines+1, "reg-mismatch", gatehouse.EInvalid), bad(cn+wrongLines+pemLines+2, "reg-stray", gatehouse.EInvalid),
			bad(cn+wrongLines+pemLines+3, "reg-noatt", gatehouse.EInvalid), bad(cn+wrongLines+pemLines+4, "reg-sym3", gatehouse.EInvalid),
		}
		got, sum := runEnrollmentImport(t, reg, admin, registry.ImportCreate, registry.ImportCSV, strings.NewReader(file))
		if diff := cmp.Diff(want, got, ignoreMessage); diff != "" {
			t.Errorf("results (-want +got):\n%s", diff)
		}
		wantSum := registry.ImportSummary{Rows: len(want), OK: 4, Rejected: len(want) - 4, Created: 4, Complete: true}
		if diff := cmp.Diff(wantSum, *sum); diff != "" {
			t.Errorf("summary (-want +got):\n%s", diff)
		}
		// Nothing a result or the summary says holds a secret, also for
		// the rows refused over one.
		out, _ := json.Marshal(map[string]any{"results": got, "summary": sum})
		noSecrets(t, "the results", out, pk1, sk1, pk3, badKey, tok, shortTok)

		// Sealed as the single create seals: the registry opens them.
		e, err := reg.GetEnrollment(ctx, admin, gatehouse.DefaultScope, "reg-sym")
		if err != nil {
			t.Fatal(err)
		}
		sec, err := reg.EnrollmentSecrets(e)
		if err != nil || base64.StdEncoding.EncodeToString(sec.PrimaryKey) != pk1 || base64.StdEncoding.EncodeToString(sec.SecondaryKey) != sk1 {
			t.Errorf("reg-sym secrets: got %v, want the file's keys", err)
		}
		if e.Type != gatehouse.EnrollmentIndividual || !e.Enabled || e.DeviceIDTemplate != "dev-sym" || e.InitialTags["site"] != "berlin" || string(e.InitialConfig) != `{"a":1}` || e.Attestation.PrimaryKey != "" {
			t.Errorf("reg-sym: got %+v", e)
		}
		if e, _ := reg.GetEnrollment(ctx, admin, gatehouse.DefaultScope, "reg-thumb"); e == nil || e.Enabled || e.Attestation.Thumbprint != thumb {
			t.Errorf("reg-thumb: got %+v, want disabled with the thumbprint", e)
		}
		et, _ := reg.GetEnrollment(ctx, admin, gatehouse.DefaultScope, "reg-tok")
		tokSum := sha256.Sum256([]byte(tok))
		if et == nil || !bytes.Equal(et.Attestation.TokenHash, tokSum[:]) || et.Attestation.MaxUses != 3 || et.Attestation.Token != "" ||
			et.Allocation.Policy != gatehouse.AllocateHashed || len(et.Allocation.Endpoints) != 2 || et.Allocation.Endpoints[0].Weight != 2 {
			t.Errorf("reg-tok: got %+v", et)
		}
		if ec, _ := reg.GetEnrollment(ctx, admin, gatehouse.DefaultScope, "reg-cert"); ec == nil || ec.Attestation.Thumbprint != thumb || ec.Attestation.Certificate == "" {
			t.Errorf("reg-cert: got %+v", ec)
		}
		evs, _ := reg.Events(ctx, admin, gatehouse.DefaultScope, 0, 1000)
		last := evs[len(evs)-1]
		if last.Type != registry.EventEnrollmentsImported {
			t.Errorf("last event: got %s, want %s", last.Type, registry.EventEnrollmentsImported)
		}
		raw, _ := json.Marshal(evs)
		noSecrets(t, "the events", raw, pk1, sk1, tok)

		// The same file again: the same rows refused, the others unchanged,
		// nothing written.
		for i := range want {
			if want[i].OK {
				want[i].Status = "unchanged"
			}
		}
		got, _ = runEnrollmentImport(t, reg, admin, registry.ImportCreate, registry.ImportCSV, strings.NewReader(file))
		if diff := cmp.Diff(want, got, ignoreMessage); diff != "" {
			t.Errorf("re-run (-want +got):\n%s", diff)
		}
		evs2, _ := reg.Events(ctx, admin, gatehouse.DefaultScope, 0, 1000)
		if len(evs2) != len(evs) {
			t.Errorf("re-run appended %d events, want none", len(evs2)-len(evs))
		}
		if e2, _ := reg.GetEnrollment(ctx, admin, gatehouse.DefaultScope, "reg-sym"); e2.ETag != e.ETag {
			t.Errorf("re-run changed reg-sym's etag")
		}
	})
}

func TestImportEnrollmentsModes(t *testing.T) {
	sealedBackends(t, func(t *testing.T, newReg func() *registry.Service, admin *gatehouse.Principal) {
		reg := newReg()
		ctx := context.Background()
		pk, pk2, tok, tok2 := secretKey(32), secretKey(32), "tok-"+secretKey(24), "tok-"+secretKey(24)
		file := csvFile(t, [][]string{{"id", "attestation", "primaryKey", "token", "tags.site", "tags.rack"},
			{"m-1", "symmetric_key", pk, "", "a", "1"}, {"m-2", "token", "", tok, "b", ""}, {"m-3", "symmetric_key", pk, "", "", ""}})
		if _, sum := runEnrollmentImport(t, reg, admin, registry.ImportCreate, registry.ImportCSV, strings.NewReader(file)); sum.Created != 3 {
			t.Fatalf("create: got %+v", sum)
		}
		m1, _ := reg.GetEnrollment(ctx, admin, gatehouse.DefaultScope, "m-1")
		sec1, _ := reg.EnrollmentSecrets(m1)

		// Create over an enrollment with other settings: conflict.
		got, _ := runEnrollmentImport(t, reg, admin, registry.ImportCreate, registry.ImportCSV, strings.NewReader("id,enabled\nm-1,false\n"))
		if diff := cmp.Diff([]registry.ImportResult{bad(2, "m-1", gatehouse.EConflict)}, got, ignoreMessage); diff != "" {
			t.Errorf("create over another (-want +got):\n%s", diff)
		}

		// Update: a policy change keeps the keys; a new key; a stale etag;
		// a missing one; a token's limits without the token; an empty tag
		// cell removes the tag.
		file = csvFile(t, [][]string{{"id", "etag", "enabled", "attestation", "primaryKey", "tokenMaxUses", "tags.rack"},
			{"m-1", m1.ETag, "false", "", "", "", ""},
			{"m-3", "", "", "symmetric_key", pk2, "", ""},
			{"m-2", "stale", "false", "", "", "", ""},
			{"nope", "", "true", "", "", "", ""},
			{"m-2", "", "", "", "", "", ""}, // duplicate
		})
		want := []registry.ImportResult{ok(2, "m-1", "updated"), ok(3, "m-3", "updated"), bad(4, "m-2", gatehouse.EPreconditionFailed),
			bad(5, "nope", gatehouse.ENotFound), bad(6, "m-2", gatehouse.EConflict)}
		got, _ = runEnrollmentImport(t, reg, admin, registry.ImportUpdate, registry.ImportCSV, strings.NewReader(file))
		if diff := cmp.Diff(want, got, ignoreMessage); diff != "" {
			t.Errorf("update (-want +got):\n%s", diff)
		}
		m1b, _ := reg.GetEnrollment(ctx, admin, gatehouse.DefaultScope, "m-1")
		sec1b, _ := reg.EnrollmentSecrets(m1b)
		if m1b.Enabled || m1b.InitialTags["rack"] != "" || m1b.InitialTags["site"] != "a" || !bytes.Equal(sec1b.PrimaryKey, sec1.PrimaryKey) || !bytes.Equal(sec1b.SecondaryKey, sec1.SecondaryKey) {
			t.Errorf("m-1 after update: got %+v; want disabled, rack removed, keys kept", m1b)
		}
		m3, _ := reg.GetEnrollment(ctx, admin, gatehouse.DefaultScope, "m-3")
		if sec3, _ := reg.EnrollmentSecrets(m3); base64.StdEncoding.EncodeToString(sec3.PrimaryKey) != pk2 {
			t.Errorf("m-3: the primary key was not replaced")
		}

		// Upsert (NDJSON): a new token replaces the hash and resets the
		// count; a new enrollment; an unknown member is refused.
		nd := fmt.Sprintf(`{"id":"m-2","attestation":{"type":"token","token":%q}}`+"\n"+
			`{"id":"m-4","attestation":{"type":"x509","thumbprint":"%s"},"initialTags":{"x":"y"},"enabled":false}`+"\n"+
			`{"id":"m-5","attestation":{"type":"symmetric_key","primaryKey":%q},"colour":"red"}`+"\n", tok2, strings.Repeat("ab", 32), pk)
		got, _ = runEnrollmentImport(t, reg, admin, registry.ImportUpsert, registry.ImportNDJSON, strings.NewReader(nd))
		if diff := cmp.Diff([]registry.ImportResult{ok(1, "m-2", "updated"), ok(2, "m-4", "created"), bad(3, "", gatehouse.EUnknownField)}, got, ignoreMessage); diff != "" {
			t.Errorf("upsert (-want +got):\n%s", diff)
		}
		m2, _ := reg.GetEnrollment(ctx, admin, gatehouse.DefaultScope, "m-2")
		if h := sha256.Sum256([]byte(tok2)); !bytes.Equal(m2.Attestation.TokenHash, h[:]) {
			t.Errorf("m-2: the token was not replaced")
		}
		// The same upsert again: unchanged.
		got, _ = runEnrollmentImport(t, reg, admin, registry.ImportUpsert, registry.ImportNDJSON, strings.NewReader(nd))
		if diff := cmp.Diff([]registry.ImportResult{ok(1, "m-2", "unchanged"), ok(2, "m-4", "unchanged"), bad(3, "", gatehouse.EUnknownField)}, got, ignoreMessage); diff != "" {
			t.Errorf("upsert again (-want +got):\n%s", diff)
		}

		// Delete twice: deleted, then unchanged; a stale etag is refused.
		want = []registry.ImportResult{ok(2, "m-3", "deleted"), ok(3, "ghost", "unchanged"), bad(4, "m-1", gatehouse.EPreconditionFailed)}
		del := "id,etag\nm-3,\nghost,\nm-1,stale\n"
		got, _ = runEnrollmentImport(t, reg, admin, registry.ImportDelete, registry.ImportCSV, strings.NewReader(del))
		if diff := cmp.Diff(want, got, ignoreMessage); diff != "" {
			t.Errorf("delete (-want +got):\n%s", diff)
		}
		want[0].Status = "unchanged"
		got, _ = runEnrollmentImport(t, reg, admin, registry.ImportDelete, registry.ImportCSV, strings.NewReader(del))
		if diff := cmp.Diff(want, got, ignoreMessage); diff != "" {
			t.Errorf("delete again (-want +got):\n%s", diff)
		}
		if _, err := reg.GetEnrollment(ctx, admin, gatehouse.DefaultScope, "m-3"); gatehouse.ErrorCode(err) != gatehouse.ENotFound {
			t.Errorf("m-3 after delete: got %v, want not_found", err)
		}

		// A group enrollment is out of an import's reach.
		if _, err := reg.CreateEnrollment(ctx, admin, gatehouse.DefaultScope, registry.EnrollmentCreate{ID: "grp", Type: gatehouse.EnrollmentGroup,
			Attestation: gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey}}); err != nil {
			t.Fatal(err)
		}
		got, _ = runEnrollmentImport(t, reg, admin, registry.ImportDelete, registry.ImportCSV, strings.NewReader("id\ngrp\n"))
		if diff := cmp.Diff([]registry.ImportResult{bad(2, "grp", gatehouse.EConflict)}, got, ignoreMessage); diff != "" {
			t.Errorf("delete a group (-want +got):\n%s", diff)
		}

		// A viewer may not import.
		viewer := &gatehouse.Principal{TokenID: "v", Scope: gatehouse.DefaultScope, Role: gatehouse.RoleViewer}
		if _, err := reg.ImportEnrollments(ctx, viewer, gatehouse.DefaultScope, registry.ImportRequest{Mode: registry.ImportCreate, Format: registry.ImportCSV,
			Body: strings.NewReader("id\nx\n")}, nil); gatehouse.ErrorCode(err) != gatehouse.EForbidden {
			t.Errorf("viewer import: got %v, want forbidden", err)
		}
		// A wrong header refuses the whole file.
		if _, err := reg.ImportEnrollments(ctx, admin, gatehouse.DefaultScope, registry.ImportRequest{Mode: registry.ImportCreate, Format: registry.ImportCSV,
			Body: strings.NewReader("id,state\nx,active\n")}, nil); gatehouse.ErrorCode(err) != gatehouse.EInvalid {
			t.Errorf("device header: got %v, want invalid", err)
		}
	})
}

// breakingReader yields r's bytes until n, then fails as a dropped
// connection does.
type breakingReader struct {
	r io.Reader
	n int
}

func (b *breakingReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	if len(p) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= n
	return n, err
}

// TestImportEnrollmentsKilled breaks an import off mid-file (a connection
// dropped in the second batch): the rows reported are applied and no
// other; running the whole file again completes it, the applied rows
// unchanged.
func TestImportEnrollmentsKilled(t *testing.T) {
	sealedBackends(t, func(t *testing.T, newReg func() *registry.Service, admin *gatehouse.Principal) {
		reg := newReg()
		ctx := context.Background()
		n := registry.ImportBatchSize + 700
		keys := make([]string, n)
		var b strings.Builder
		b.WriteString("id,attestation,primaryKey,tags.n\n")
		for i := range n {
			keys[i] = secretKey(32)
			fmt.Fprintf(&b, "k-%05d,symmetric_key,%s,%d\n", i, keys[i], i)
		}
		file := b.String()
		cut := len(file) * 3 / 4
		got, sum := runEnrollmentImport(t, reg, admin, registry.ImportCreate, registry.ImportCSV, &breakingReader{r: strings.NewReader(file), n: cut})
		if sum.Complete || sum.Error == nil {
			t.Fatalf("broken import: summary %+v, want incomplete with an error", sum)
		}
		if sum.Rows <= registry.ImportBatchSize || sum.Rows >= n || sum.Created != sum.Rows {
			t.Fatalf("broken import: summary %+v, want some rows of the second batch created", sum)
		}
		applied := len(got)
		// Exactly the reported rows exist.
		page, err := reg.ListEnrollments(ctx, admin, gatehouse.DefaultScope, "", "", registry.MaxPageSize)
		if err != nil {
			t.Fatal(err)
		}
		total := len(page.Items)
		for page.NextCursor != "" {
			page, err = reg.ListEnrollments(ctx, admin, gatehouse.DefaultScope, "", page.NextCursor, registry.MaxPageSize)
			if err != nil {
				t.Fatal(err)
			}
			total += len(page.Items)
		}
		if total != applied {
			t.Errorf("after the break: %d enrollments stored, %d reported", total, applied)
		}

		got, sum = runEnrollmentImport(t, reg, admin, registry.ImportCreate, registry.ImportCSV, strings.NewReader(file))
		if !sum.Complete || sum.Unchanged != applied || sum.Created != n-applied || sum.Rejected != 0 {
			t.Errorf("re-run: got %+v, want %d unchanged and %d created", sum, applied, n-applied)
		}
		for _, i := range []int{0, applied - 1, applied, n - 1} {
			e, err := reg.GetEnrollment(ctx, admin, gatehouse.DefaultScope, fmt.Sprintf("k-%05d", i))
			if err != nil {
				t.Fatalf("k-%05d: %v", i, err)
			}
			sec, err := reg.EnrollmentSecrets(e)
			if err != nil || base64.StdEncoding.EncodeToString(sec.PrimaryKey) != keys[i] || e.InitialTags["n"] != fmt.Sprint(i) {
				t.Errorf("k-%05d: keys or tags differ from the file (%v)", i, err)
			}
		}
	})
}

// TestExportEnrollmentsNoSecrets exports enrollments of every attestation,
// some with generated secrets and a webhook secret, as the HTTP API
// renders them (NDJSON objects and CSV rows), and looks for every secret in
// the output. The NDJSON export imported again changes nothing.
func TestExportEnrollmentsNoSecrets(t *testing.T) {
	sealedBackends(t, func(t *testing.T, newReg func() *registry.Service, admin *gatehouse.Principal) {
		reg := newReg()
		ctx := context.Background()
		pk, sk, tok := secretKey(32), secretKey(32), "tok-"+secretKey(24)
		_, thumb := deviceCertPEM(t, "x-1")
		file := csvFile(t, [][]string{{"id", "attestation", "primaryKey", "secondaryKey", "token", "thumbprint", "tags.site", "config"},
			{"s-1", "symmetric_key", pk, sk, "", "", "a", `{"x":1}`}, {"t-1", "token", "", "", tok, "", "b", ""}, {"x-1", "x509", "", "", "", thumb, "", ""}})
		if _, sum := runEnrollmentImport(t, reg, admin, registry.ImportCreate, registry.ImportCSV, strings.NewReader(file)); sum.Created != 3 {
			t.Fatalf("import: %+v", sum)
		}
		hookSecret := "hook-secret-" + secretKey(16)
		gen, err := reg.CreateEnrollment(ctx, admin, gatehouse.DefaultScope, registry.EnrollmentCreate{ID: "g-1", Type: gatehouse.EnrollmentIndividual,
			Attestation:  gatehouse.Attestation{Type: gatehouse.AttestSymmetricKey},
			PreProvision: &gatehouse.Webhook{URL: "https://hooks.example/pre", Secret: hookSecret}})
		if err != nil {
			t.Fatal(err)
		}
		gtok, err := reg.CreateEnrollment(ctx, admin, gatehouse.DefaultScope, registry.EnrollmentCreate{ID: "grp-tok", Type: gatehouse.EnrollmentGroup,
			Attestation: gatehouse.Attestation{Type: gatehouse.AttestToken, MaxUses: 10}})
		if err != nil {
			t.Fatal(err)
		}
		secrets := []string{pk, sk, tok, hookSecret, gen.Attestation.PrimaryKey, gen.Attestation.SecondaryKey, gtok.Attestation.Token}
		for _, s := range secrets {
			if s == "" {
				t.Fatal("a generated secret was not shown at creation")
			}
		}

		var nd bytes.Buffer
		var csvOut bytes.Buffer
		cw := csv.NewWriter(&csvOut)
		keys := []string{"site"}
		row := make([]string, len(registry.EnrollmentCSVColumns)+len(keys))
		cw.Write(append(append([]string{}, registry.EnrollmentCSVColumns...), "tags.site"))
		var ids []string
		err = reg.ExportEnrollments(ctx, admin, gatehouse.DefaultScope, registry.EnrollmentExportQuery{}, func(es []*gatehouse.Enrollment) error {
			for _, e := range es {
				ids = append(ids, e.ID)
				json.NewEncoder(&nd).Encode(e)
				registry.EnrollmentCSVRow(row, e, keys)
				cw.Write(row)
			}
			return nil
		})
		cw.Flush()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"g-1", "grp-tok", "s-1", "t-1", "x-1"}, ids); diff != "" {
			t.Errorf("exported IDs (-want +got):\n%s", diff)
		}
		noSecrets(t, "the NDJSON export", nd.Bytes(), secrets...)
		noSecrets(t, "the CSV export", csvOut.Bytes(), secrets...)
		if !strings.Contains(csvOut.String(), thumb) || !strings.Contains(nd.String(), `"site":"a"`) {
			t.Errorf("the export lacks public members:\n%s", csvOut.String())
		}

		// Filters.
		var only []string
		if err := reg.ExportEnrollments(ctx, admin, gatehouse.DefaultScope, registry.EnrollmentExportQuery{Type: gatehouse.EnrollmentIndividual, Attestation: gatehouse.AttestToken},
			func(es []*gatehouse.Enrollment) error {
				for _, e := range es {
					only = append(only, e.ID)
				}
				return nil
			}); err != nil || len(only) != 1 || only[0] != "t-1" {
			t.Errorf("individual token export: got %v, %v; want [t-1]", only, err)
		}

		// The individual enrollments of the NDJSON export, imported again
		// in update mode: all unchanged (the secrets stay as stored).
		var individual bytes.Buffer
		for line := range strings.SplitSeq(strings.TrimSpace(nd.String()), "\n") {
			if !strings.Contains(line, `"type":"group"`) {
				individual.WriteString(line + "\n")
			}
		}
		got, sum := runEnrollmentImport(t, reg, admin, registry.ImportUpdate, registry.ImportNDJSON, &individual)
		if sum.Unchanged != 4 || sum.Rejected != 0 {
			t.Errorf("export imported again: got %+v, %+v; want 4 unchanged", sum, got)
		}
		// And the CSV export (group row and all): the group refused, the
		// others unchanged.
		got, sum = runEnrollmentImport(t, reg, admin, registry.ImportUpdate, registry.ImportCSV, bytes.NewReader(csvOut.Bytes()))
		if sum.Unchanged != 4 || sum.Rejected != 1 {
			t.Errorf("CSV export imported again: got %+v, %+v; want 4 unchanged, the group refused", sum, got)
		}
	})
}

// TestImportEnrollmentsConcurrent runs the same file through two nodes at
// once: every enrollment is created exactly once (the losing batch runs
// again and finds it), and every row ends OK.
func TestImportEnrollmentsConcurrent(t *testing.T) {
	sealedBackends(t, func(t *testing.T, newReg func() *registry.Service, admin *gatehouse.Principal) {
		n := registry.ImportBatchSize + 300
		var b strings.Builder
		b.WriteString("id,attestation,primaryKey\n")
		for i := range n {
			fmt.Fprintf(&b, "c-%05d,symmetric_key,%s\n", i, secretKey(32))
		}
		file := b.String()
		sums := make([]*registry.ImportSummary, 2)
		done := make(chan int, 2)
		for node := range 2 {
			reg := newReg()
			go func() {
				defer func() { done <- node }()
				sum, err := reg.ImportEnrollments(context.Background(), admin, gatehouse.DefaultScope,
					registry.ImportRequest{Mode: registry.ImportUpsert, Format: registry.ImportCSV, Body: strings.NewReader(file)},
					func([]registry.ImportResult) error { return nil })
				if err != nil {
					t.Errorf("node %d: %v", node, err)
				}
				sums[node] = sum
			}()
		}
		<-done
		<-done
		if sums[0] == nil || sums[1] == nil {
			t.Fatal("an import failed")
		}
		for i, s := range sums {
			if !s.Complete || s.OK != n || s.Updated != 0 {
				t.Errorf("node %d: %+v, want %d rows OK, none updated", i, s, n)
			}
		}
		if created := sums[0].Created + sums[1].Created; created != n {
			t.Errorf("created %d + %d, want %d in all", sums[0].Created, sums[1].Created, n)
		}
	})
}
