package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"io"
	"maps"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// ImportMode says what an import does with each record.
type ImportMode string

const (
	// ImportCreate creates devices. A record whose device exists already
	// with the same state, tags and config is "unchanged" (so running the
	// same file again ends the same way); one that differs is a conflict.
	ImportCreate ImportMode = "create"
	// ImportUpsert creates missing devices and updates existing ones.
	ImportUpsert ImportMode = "upsert"
	// ImportUpdate updates existing devices; a missing one is not_found.
	ImportUpdate ImportMode = "update"
	// ImportDelete deletes devices (as DeleteDevice would); a missing one
	// is "unchanged".
	ImportDelete ImportMode = "delete"
)

// Valid reports whether m is a known mode.
func (m ImportMode) Valid() bool {
	return m == ImportCreate || m == ImportUpsert || m == ImportUpdate || m == ImportDelete
}

// EventDevicesImported summarises one committed batch of an import: the
// devices it created and updated. Lifecycle changes an import makes (a new
// state, a deletion, a revoked credential) keep their own per-device
// events, which live enforcement follows.
const EventDevicesImported = "devices.imported"

// ImportBatchSize is how many records share one transaction. Larger
// batches write faster but hold the SQLite writer longer.
const ImportBatchSize = 1000

// ImportRequest is one import: its mode, the file's format and its body.
type ImportRequest struct {
	Mode   ImportMode
	Format ImportFormat
	Body   io.Reader

	// hook, if set, runs in the transaction of every batch (an import job
	// records its progress there).
	hook batchHook
}

// batchHook runs inside the transaction of each batch with the batch's
// results, and, for a batch whose records were all refused before a
// transaction, in one of its own: an import job counts its progress there,
// so that its status never counts records that did not commit. An error
// rolls the batch back and stops the import. It may run more than once for
// one batch (a retried transaction), so it must not act outside tx.
type batchHook func(tx gatehouse.Tx, ev *eventLog, results []ImportResult) error

// Import row statuses.
const (
	ImportCreated   = "created"
	ImportUpdated   = "updated"
	ImportDeleted   = "deleted"
	ImportUnchanged = "unchanged"
)

// ImportResult is the outcome of one record.
type ImportResult struct {
	Row     int    `json:"row"`
	ID      string `json:"id,omitempty"`
	OK      bool   `json:"ok"`
	Status  string `json:"status,omitempty"` // created, updated, deleted, unchanged
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// ImportSummary counts an import's records. Complete is false if the
// import stopped before the end of the file (Error says why); the records
// reported until then stand.
type ImportSummary struct {
	Rows      int          `json:"rows"`
	OK        int          `json:"ok"`
	Rejected  int          `json:"rejected"`
	Created   int          `json:"created"`
	Updated   int          `json:"updated"`
	Deleted   int          `json:"deleted"`
	Unchanged int          `json:"unchanged"`
	Complete  bool         `json:"complete"`
	Error     *ImportError `json:"error,omitempty"`
}

// ImportError is why an import stopped early.
type ImportError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (s *ImportSummary) count(rs []ImportResult) {
	for _, r := range rs {
		s.Rows++
		if !r.OK {
			s.Rejected++
			continue
		}
		s.OK++
		switch r.Status {
		case ImportCreated:
			s.Created++
		case ImportUpdated:
			s.Updated++
		case ImportDeleted:
			s.Deleted++
		default:
			s.Unchanged++
		}
	}
}

// importBatch is a run of records on its way to one transaction. results
// is filled for every record refused before the transaction (rows whose
// result is empty are applied in it).
type importBatch[T any] struct {
	items   []T
	results []ImportResult
}

// importSource is one kind of import (devices, enrollments) to runImport.
type importSource[T any] struct {
	// noun names a record in messages ("device", "enrollment").
	noun string
	// next reads and checks the next record, outside any transaction:
	// its row and ID, what commit needs of it, and rowErr if it is refused.
	// err is io.EOF after the last record, or why the file cannot be read
	// further.
	next func() (row int, id string, item T, rowErr error, err error)
	// commit applies the batch's records whose result is still empty, in
	// one transaction, and fills in their results.
	commit func(ctx context.Context, b *importBatch[T]) error
	// hook and update run a batch's batchHook alone, for a batch with
	// nothing to commit (commit runs it otherwise).
	hook   batchHook
	update func(ctx context.Context, fn func(tx gatehouse.Tx, ev *eventLog) error) error
}

// ImportDevices reads req.Body record by record and applies it in batches
// of ImportBatchSize, one transaction each, reporting every record's
// outcome, in file order, through emit (once per committed batch). A bad
// record is reported and never stops the others; a batch commits whole or
// not at all, with its events.
//
// An error returned means nothing was imported (no permission, no such
// scope, a file whose header is wrong); emit was not called. Once records
// flow, a failure that ends the import early (the body breaks off, the
// database fails) is reported in the summary instead.
func (s *Service) ImportDevices(ctx context.Context, p *gatehouse.Principal, scope string, req ImportRequest, emit func([]ImportResult) error) (*ImportSummary, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return nil, err
	}
	if !req.Mode.Valid() {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "unknown import mode %q; use create, upsert, update or delete", truncate(string(req.Mode), 32))
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	rd, err := NewImportReader(req.Body, req.Format)
	if err != nil {
		return nil, err
	}
	actor := p.Actor()
	src := importSource[deviceItem]{
		noun: "device",
		next: func() (int, string, deviceItem, error, error) {
			rec, err := rd.Next()
			if err != nil {
				return 0, "", deviceItem{}, nil, err
			}
			cand, rowErr := prepareImport(rec, req.Mode, scope)
			return rec.Row, rec.ID, deviceItem{rec, cand}, rowErr, nil
		},
		commit: func(ctx context.Context, b *importBatch[deviceItem]) error {
			return s.commitImport(ctx, scope, req.Mode, actor, b, req.hook)
		},
		hook: req.hook, update: s.update,
	}
	return runImport(ctx, src, emit), nil
}

// runImport is the pipeline every kind of import runs: one goroutine reads
// and checks records and hands them on in batches while the previous batch
// commits; results go to emit once per committed batch, in file order.
func runImport[T any](ctx context.Context, src importSource[T], emit func([]ImportResult) error) *ImportSummary {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan *importBatch[T], 4)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		readErr <- readImport(ctx, src, batches)
	}()

	sum := &ImportSummary{}
	// The reader must be done with the body before this returns (a server
	// may not read a request body after its handler has returned): on an
	// early stop, cancel it and wait for it.
	stop := func(err error) *ImportSummary {
		sum.Error = importError(err)
		cancel()
		for range batches {
		}
		return sum
	}
	for b := range batches {
		pending := false
		for _, r := range b.results {
			pending = pending || r.Code == ""
		}
		if pending {
			if err := src.commit(ctx, b); err != nil {
				return stop(err)
			}
		} else if src.hook != nil {
			err := src.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error { return src.hook(tx, ev, b.results) })
			if err != nil {
				return stop(err)
			}
		}
		sum.count(b.results)
		if err := emit(b.results); err != nil {
			return stop(err)
		}
	}
	if err := <-readErr; err != nil {
		sum.Error = importError(err)
		return sum
	}
	sum.Complete = true
	return sum
}

func importError(err error) *ImportError {
	if errors.Is(err, context.Canceled) {
		return &ImportError{Code: gatehouse.EUnavailable, Message: "the import was interrupted"}
	}
	return &ImportError{Code: gatehouse.ErrorCode(err), Message: gatehouse.ErrorMessage(err)}
}

// readImport reads and checks records, outside any transaction, and hands
// them on in batches.
func readImport[T any](ctx context.Context, src importSource[T], out chan<- *importBatch[T]) error {
	// Rows by ID hash, to refuse an ID seen earlier in the file: 12 bytes
	// an entry, not the IDs themselves. A hash collision (odds ~1e-8 at a
	// million rows) would refuse a row as a duplicate, never apply one twice.
	seed := maphash.MakeSeed()
	seen := map[uint64]int32{}
	b := newImportBatch[T]()
	send := func() bool {
		select {
		case out <- b:
			b = newImportBatch[T]()
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		row, id, item, rowErr, err := src.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if len(b.items) > 0 {
				send()
			}
			return err
		}
		res := ImportResult{Row: row, ID: id}
		if rowErr == nil {
			h := maphash.String(seed, id)
			if first, dup := seen[h]; dup {
				rowErr = gatehouse.Errorf(gatehouse.EConflict, "%s %q appears earlier in this file (row %d); each ID may appear once", src.noun, id, first)
			} else {
				seen[h] = int32(row)
			}
		}
		if rowErr != nil {
			res.Code, res.Message = gatehouse.ErrorCode(rowErr), gatehouse.ErrorMessage(rowErr)
		}
		b.items = append(b.items, item)
		b.results = append(b.results, res)
		if len(b.items) == ImportBatchSize && !send() {
			return ctx.Err()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if len(b.items) > 0 && !send() {
		return ctx.Err()
	}
	return nil
}

func newImportBatch[T any]() *importBatch[T] {
	return &importBatch[T]{
		items:   make([]T, 0, ImportBatchSize),
		results: make([]ImportResult, 0, ImportBatchSize),
	}
}

// deviceItem is a device record and, in the modes that create, the device
// it would create.
type deviceItem struct {
	rec  *ImportRecord
	cand *gatehouse.Device
}

// prepareImport checks what a record can be checked for alone and, in the
// modes that create, builds the device it would create.
func prepareImport(rec *ImportRecord, mode ImportMode, scope string) (*gatehouse.Device, error) {
	if rec.Err != nil {
		return nil, rec.Err
	}
	if err := gatehouse.ValidateDeviceID(rec.ID); err != nil {
		return nil, err
	}
	if mode == ImportDelete {
		return nil, nil
	}
	if rec.State != "" && !rec.State.Valid() {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "unknown state %q; states are provisioned, active, inactive, quarantined, decommissioned", truncate(string(rec.State), 32))
	}
	if rec.Config != nil {
		if err := gatehouse.ValidateJSONObject("config", rec.Config, gatehouse.MaxConfigBytes); err != nil {
			return nil, err
		}
		rec.Config = gatehouse.CompactJSON(rec.Config)
	}
	for _, k := range rec.Untag {
		if err := gatehouse.ValidateTagKey(k); err != nil {
			return nil, err
		}
	}
	if err := gatehouse.ValidateTags(rec.Tags); err != nil {
		return nil, err
	}
	if mode == ImportUpdate {
		return nil, nil
	}
	d := &gatehouse.Device{
		ID: rec.ID, Scope: scope, State: rec.State,
		Connection: gatehouse.Connection{Status: gatehouse.Offline},
		Tags:       rec.Tags, Config: rec.Config, Reported: json.RawMessage("{}"),
		ETag: newETag(),
	}
	if d.State == "" {
		d.State = gatehouse.StateProvisioned
	}
	if d.Tags == nil {
		d.Tags = map[string]string{}
	}
	if d.Config == nil {
		d.Config = json.RawMessage("{}")
	}
	return d, d.Validate()
}

// errImportRace asks for a batch to run again: a device the batch was to
// create appeared meanwhile (another node, in PostgreSQL).
var errImportRace = errors.New("import: a device appeared while the batch ran")

// commitImport applies the records of b not refused already, in one
// transaction, and fills in their results.
func (s *Service) commitImport(ctx context.Context, scope string, mode ImportMode, actor string, b *importBatch[deviceItem], hook batchHook) error {
	var results []ImportResult
	var revoked bool
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		err = s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
			results = append(results[:0], b.results...)
			revoked, err = s.applyImport(tx, ev, scope, mode, actor, b, results)
			if err == nil && hook != nil {
				err = hook(tx, ev, results)
			}
			return err
		})
		if !errors.Is(err, errImportRace) {
			break
		}
	}
	if err != nil {
		return err
	}
	copy(b.results, results)
	if revoked {
		if err := s.refreshCRL(ctx, scope); err != nil {
			s.log.Error("refresh CRL after import", "scope", scope, "err", err)
		}
	}
	return nil
}

// applyImport runs inside the batch's transaction. results holds the
// outcomes decided before it; it sets the others.
func (s *Service) applyImport(tx gatehouse.Tx, ev *eventLog, scope string, mode ImportMode, actor string, b *importBatch[deviceItem], results []ImportResult) (revoked bool, err error) {
	now := s.timestamp()
	ids := make([]string, 0, len(b.items))
	for i, it := range b.items {
		if results[i].Code == "" {
			ids = append(ids, it.rec.ID)
		}
	}
	existing, err := tx.GetDevices(scope, ids)
	if err != nil {
		return false, err
	}
	var creates []*gatehouse.Device
	var createIdx []int
	var created, updated []string
	fail := func(i int, err error) {
		results[i].Code, results[i].Message = gatehouse.ErrorCode(err), gatehouse.ErrorMessage(err)
	}
	done := func(i int, status string) { results[i].OK, results[i].Status = true, status }
	for i, it := range b.items {
		if results[i].Code != "" {
			continue
		}
		rec := it.rec
		cur := existing[rec.ID]
		switch {
		case mode == ImportDelete:
			if cur == nil {
				done(i, ImportUnchanged)
				continue
			}
			r, err := s.importDelete(tx, ev, cur, actor, now)
			if err != nil {
				if isTxError(err) {
					return false, err
				}
				fail(i, err)
				continue
			}
			revoked = revoked || r
			done(i, ImportDeleted)
		case cur == nil && mode == ImportUpdate:
			fail(i, gatehouse.Errorf(gatehouse.ENotFound, "device %q not found in scope %q; use mode upsert to create it", rec.ID, scope))
		case cur == nil:
			d := it.cand.Clone()
			d.CreatedAt, d.UpdatedAt = now, now
			creates, createIdx = append(creates, d), append(createIdx, i)
		case mode == ImportCreate:
			if sameDevice(cur, it.cand) {
				done(i, ImportUnchanged)
			} else {
				fail(i, gatehouse.Errorf(gatehouse.EConflict, "device %q already exists in scope %q with other state, tags or config; use mode upsert or update to change it", rec.ID, scope))
			}
		default:
			changed, err := s.importUpdate(tx, ev, cur, rec, actor, now)
			if err != nil {
				if isTxError(err) {
					return false, err
				}
				fail(i, err)
				continue
			}
			if changed {
				updated = append(updated, rec.ID)
				done(i, ImportUpdated)
			} else {
				done(i, ImportUnchanged)
			}
		}
	}
	if len(creates) > 0 {
		changes := make([]*gatehouse.StateChange, len(creates))
		for j, d := range creates {
			changes[j] = &gatehouse.StateChange{To: d.State, Actor: actor, Reason: "imported", Time: now}
		}
		if err := tx.CreateDevices(creates, changes); err != nil {
			if gatehouse.ErrorCode(err) == gatehouse.EConflict {
				return false, errImportRace
			}
			return false, err
		}
		created = make([]string, len(creates))
		for j, i := range createIdx {
			done(i, ImportCreated)
			created[j] = creates[j].ID
		}
	}
	if len(created)+len(updated) > 0 {
		data := map[string]any{"mode": mode, "created": nonNilStrings(created), "updated": nonNilStrings(updated)}
		if err := ev.append(scope, EventDevicesImported, actor, "devices", now, data); err != nil {
			return false, err
		}
	}
	return revoked, nil
}

// isTxError tells an error that may have ended the transaction from a
// refusal of one record.
func isTxError(err error) bool {
	switch gatehouse.ErrorCode(err) {
	case gatehouse.EInternal, gatehouse.EUnavailable:
		return true
	}
	return false
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// sameDevice reports whether cur already is what cand would create.
func sameDevice(cur, cand *gatehouse.Device) bool {
	return cur.State == cand.State && maps.Equal(cur.Tags, cand.Tags) && bytes.Equal(cur.Config, cand.Config)
}

// importUpdate applies a record to an existing device. A record that
// changes nothing is not written (and its etag not checked).
func (s *Service) importUpdate(tx gatehouse.Tx, ev *eventLog, cur *gatehouse.Device, rec *ImportRecord, actor string, now time.Time) (bool, error) {
	d := cur.Clone()
	if rec.ReplaceTags {
		d.Tags = maps.Clone(rec.Tags)
	} else {
		maps.Copy(d.Tags, rec.Tags)
		for _, k := range rec.Untag {
			delete(d.Tags, k)
		}
	}
	if rec.Config != nil {
		d.Config = rec.Config
	}
	stateChange := rec.State != "" && rec.State != cur.State
	if !stateChange && maps.Equal(d.Tags, cur.Tags) && bytes.Equal(d.Config, cur.Config) {
		return false, nil
	}
	if rec.ETag != "" && rec.ETag != cur.ETag {
		return false, gatehouse.Errorf(gatehouse.EPreconditionFailed, "device %q has changed since the file was made (its etag is now %q)", cur.ID, cur.ETag)
	}
	if err := gatehouse.ValidateTags(d.Tags); err != nil {
		return false, err
	}
	if stateChange {
		if rec.State == gatehouse.StateDecommissioned {
			return false, gatehouse.Errorf(gatehouse.EInvalidTransition, "an import does not decommission devices; use POST .../devices/%s/state, which also revokes their credentials", cur.ID)
		}
		if err := gatehouse.CheckTransition(cur.State, rec.State); err != nil {
			return false, err
		}
		d.State = rec.State
	}
	d.UpdatedAt, d.ETag = now, newETag()
	if err := tx.UpdateDevice(d, cur.ETag); err != nil {
		return false, err
	}
	if stateChange {
		if err := tx.AddStateChange(d.Scope, d.ID, &gatehouse.StateChange{From: cur.State, To: d.State, Actor: actor, Reason: "imported", Time: now}); err != nil {
			return false, err
		}
		if err := ev.append(d.Scope, gatehouse.EventDeviceStateChanged, actor, gatehouse.DeviceSubject(d.ID), now,
			map[string]any{"from": cur.State, "to": d.State, "reason": "imported", "etag": d.ETag}); err != nil {
			return false, err
		}
	}
	return true, nil
}

// importDelete deletes a device as DeleteDevice does.
func (s *Service) importDelete(tx gatehouse.Tx, ev *eventLog, cur *gatehouse.Device, actor string, now time.Time) (bool, error) {
	if !cur.Deletable() {
		return false, gatehouse.Errorf(gatehouse.EConflict, "device %q is %s and has been seen; decommission it first", cur.ID, cur.State)
	}
	revoked, err := s.revokeDevice(tx, ev, cur.Scope, cur.ID, actor, now)
	if err != nil {
		return false, err
	}
	if err := tx.DeleteDevice(cur.Scope, cur.ID); err != nil {
		return false, err
	}
	return revoked, ev.append(cur.Scope, gatehouse.EventDeviceDeleted, actor, gatehouse.DeviceSubject(cur.ID), now,
		map[string]any{"id": cur.ID, "state": cur.State})
}
