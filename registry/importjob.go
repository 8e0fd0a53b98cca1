package registry

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// An import job is an import (ImportDevices, ImportEnrollments: the same
// pipeline, not a copy) run in the background. The upload is spooled first,
// encrypted under a key only this node's memory holds (importspool.go); the
// job's row in the database carries its state and counts, written in the
// transaction of each batch it counts, so any node sharing the database
// answers its status truthfully. The full per-row result file stays on the
// node that ran the job; the database keeps the first MaxImportJobRejects
// refused records, for the other nodes.

// EventImportFinished is written once per import job, when it ends
// (succeeded, failed or canceled), with its counts.
const EventImportFinished = "import.finished"

// Import job kinds.
const (
	ImportKindDevices     = "devices"
	ImportKindEnrollments = "enrollments"
)

// Import job defaults.
const (
	DefaultImportJobConcurrency = 2
	DefaultImportJobMaxUpload   = 1 << 30
	DefaultImportJobTTL         = 7 * 24 * time.Hour
	DefaultImportJobSweep       = time.Minute
	DefaultImportJobHeartbeat   = 10 * time.Second
	DefaultImportJobLease       = 2 * time.Minute
)

// ErrImportJobNodeRestarted is the message of a job whose node stopped
// while it ran: its spool is unreadable now (the key was in memory only).
const ErrImportJobNodeRestarted = "the node restarted; upload the file again — re-running is idempotent"

// ImportJobLeaseExpired is the error code of a job that another node (or
// its own, late) failed because the job's node stopped renewing its lease:
// the node died for good, or lost the database for longer than the lease.
// Only that node could read the job's spool, so nobody can finish the job.
// It appears only as a job's error.code (and in its import.finished
// event), never as the code of a request's error.
const ImportJobLeaseExpired = "lease_expired"

func leaseExpiredMessage(j *gatehouse.ImportJob, lease time.Duration) string {
	return fmt.Sprintf("node %q stopped renewing the job's lease at %s and did not renew it within %s: it stopped, or lost the database. "+
		"Only that node could read the uploaded file; the batches counted are committed. Upload the file again — re-running is idempotent",
		j.Node, j.HeartbeatAt.Format(time.RFC3339), lease)
}

// ImportJobConfig configures the import jobs a node runs.
type ImportJobConfig struct {
	// Dir holds the encrypted spools and the result files (made 0700).
	Dir string
	// Node names this node, stably across restarts: a restarted node
	// marks the jobs it was running failed.
	Node string
	// MaxConcurrent bounds the jobs this node uploads or runs at once
	// (default 2); beyond it, rate_limited.
	MaxConcurrent int
	// MaxUpload bounds an upload, in bytes (default 1 GiB).
	MaxUpload int64
	// TTL is how long a job and its result file are kept (default 7 days).
	TTL time.Duration
	// SweepInterval is how often expired jobs are deleted (default 1 min).
	SweepInterval time.Duration
	// HeartbeatInterval is how often this node renews its lease on the
	// jobs it runs, in one statement for all of them (default 10 s). The
	// batches a job commits renew its lease too.
	HeartbeatInterval time.Duration
	// Lease is how old the heartbeat of an unfinished job may grow before
	// this node fails the job, whichever node runs it (default 2 min; at
	// least 3 heartbeat intervals). Every node sharing the database should
	// have the same lease, and clocks that agree to well within it.
	Lease time.Duration
}

// WithImportJobs enables import jobs on this node.
func WithImportJobs(cfg ImportJobConfig) Option {
	return func(s *Service) {
		if cfg.MaxConcurrent <= 0 {
			cfg.MaxConcurrent = DefaultImportJobConcurrency
		}
		if cfg.MaxUpload <= 0 {
			cfg.MaxUpload = DefaultImportJobMaxUpload
		}
		if cfg.TTL <= 0 {
			cfg.TTL = DefaultImportJobTTL
		}
		if cfg.SweepInterval <= 0 {
			cfg.SweepInterval = DefaultImportJobSweep
		}
		if cfg.HeartbeatInterval <= 0 {
			cfg.HeartbeatInterval = DefaultImportJobHeartbeat
		}
		if cfg.Lease <= 0 {
			cfg.Lease = DefaultImportJobLease
		}
		// A lease of fewer heartbeats would fail jobs whose node is
		// merely slow for a moment.
		cfg.Lease = max(cfg.Lease, 3*cfg.HeartbeatInterval)
		if cfg.Node == "" {
			cfg.Node = "node-" + randomHex(8)
		}
		s.jobs = &jobRunner{cfg: cfg, active: map[string]bool{}, running: map[string]context.CancelFunc{}}
	}
}

// jobRunner is this node's share of import jobs.
type jobRunner struct {
	cfg    ImportJobConfig
	mu     sync.Mutex
	base   context.Context // set while RunImportJobs runs
	active map[string]bool // jobs uploading or running here, by ID
	// running holds the jobs of active whose row is in the database, with
	// what stops each: their leases are renewed.
	running map[string]context.CancelFunc
	wg      sync.WaitGroup
}

func (r *jobRunner) spoolPath(id string) string { return filepath.Join(r.cfg.Dir, id+".spool") }
func (r *jobRunner) resultPath(id string) string {
	return filepath.Join(r.cfg.Dir, id+".results.ndjson")
}

// ImportJobCreate is a new import job: what ImportRequest says, and the kind.
type ImportJobCreate struct {
	Kind   string // devices (default) or enrollments
	Mode   ImportMode
	Format ImportFormat
	Body   io.Reader
}

// ImportJobInfo is an import job as the API shows it. OK counts the records
// applied, Unchanged among them those that changed nothing.
type ImportJobInfo struct {
	ID              string                   `json:"id"`
	Scope           string                   `json:"scope"`
	State           gatehouse.ImportJobState `json:"state"`
	Kind            string                   `json:"kind"`
	Mode            string                   `json:"mode"`
	Format          string                   `json:"format"`
	Rows            int64                    `json:"rows"`
	OK              int64                    `json:"ok"`
	Unchanged       int64                    `json:"unchanged"`
	Rejected        int64                    `json:"rejected"`
	CancelRequested bool                     `json:"cancelRequested,omitempty"`
	CreatedAt       time.Time                `json:"createdAt"`
	StartedAt       *time.Time               `json:"startedAt,omitempty"`
	FinishedAt      *time.Time               `json:"finishedAt,omitempty"`
	ExpiresAt       time.Time                `json:"expiresAt"`
	CreatedBy       string                   `json:"createdBy"`
	Node            string                   `json:"node"`
	// HeartbeatAt is when Node last renewed its lease on the job; shown
	// while the job is unfinished.
	HeartbeatAt *time.Time   `json:"heartbeatAt,omitempty"`
	Error       *ImportError `json:"error,omitempty"`
}

func importJobInfo(j *gatehouse.ImportJob) *ImportJobInfo {
	info := &ImportJobInfo{
		ID: j.ID, Scope: j.Scope, State: j.State, Kind: j.Kind, Mode: j.Mode, Format: j.Format,
		Rows: j.Rows, OK: j.OK, Unchanged: j.Unchanged, Rejected: j.Rejected, CancelRequested: j.CancelRequested,
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, ExpiresAt: j.ExpiresAt,
		CreatedBy: j.CreatedBy, Node: j.Node,
	}
	if !j.State.Finished() {
		hb := j.HeartbeatAt
		info.HeartbeatAt = &hb
	}
	if j.ErrorCode != "" {
		info.Error = &ImportError{Code: j.ErrorCode, Message: j.ErrorMessage}
	}
	return info
}

// ImportJobPage is a page of import jobs, newest first.
type ImportJobPage struct {
	Items      []*ImportJobInfo `json:"items"`
	NextCursor string           `json:"nextCursor,omitempty"`
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newJobID returns an ID that sorts by creation time (microseconds, in
// fixed-width hex) and cannot be guessed.
func newJobID(now time.Time) string {
	return fmt.Sprintf("ij-%013x-%s", now.UnixMicro(), randomHex(6))
}

func (s *Service) jobRunner() (*jobRunner, error) {
	if s.jobs == nil {
		return nil, gatehouse.Errorf(gatehouse.EUnavailable, "import jobs are not enabled on this node; use POST .../imports")
	}
	return s.jobs, nil
}

// ImportJobsActive is how many import jobs this node uploads or runs now
// (at most ImportJobConfig.MaxConcurrent).
func (s *Service) ImportJobsActive() int {
	if s.jobs == nil {
		return 0
	}
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	return len(s.jobs.active)
}

// CreateImportJob spools req.Body (encrypted) and runs the import in the
// background. It returns the job, queued, once the upload is on disk and
// the job is in the database.
func (s *Service) CreateImportJob(ctx context.Context, p *gatehouse.Principal, scope string, req ImportJobCreate) (*ImportJobInfo, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return nil, err
	}
	switch req.Kind {
	case "":
		req.Kind = ImportKindDevices
	case ImportKindDevices, ImportKindEnrollments:
	default:
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "kind must be devices or enrollments")
	}
	if req.Mode == "" {
		req.Mode = ImportCreate
	}
	if !req.Mode.Valid() {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "unknown import mode %q; use create, upsert, update or delete", truncate(string(req.Mode), 32))
	}
	if req.Format != ImportCSV && req.Format != ImportNDJSON {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "format must be csv or ndjson")
	}
	if req.Kind == ImportKindEnrollments && s.keyring == nil {
		return nil, gatehouse.Errorf(gatehouse.EUnavailable, "this node has no master key configured")
	}
	r, err := s.jobRunner()
	if err != nil {
		return nil, err
	}
	now := s.timestamp()
	id := newJobID(now)
	base, err := r.reserve(id)
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			os.Remove(r.spoolPath(id))
			r.release(id)
			r.wg.Done()
		}
	}()
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	key := make([]byte, spoolKeySize)
	rand.Read(key)
	if err := r.spool(id, key, req.Body); err != nil {
		return nil, err
	}
	j := &gatehouse.ImportJob{
		Scope: scope, ID: id, Kind: req.Kind, Mode: string(req.Mode), Format: string(req.Format),
		State: gatehouse.JobQueued, Node: r.cfg.Node, CreatedBy: p.Actor(), CreatedAt: now,
		ExpiresAt: now.Add(r.cfg.TTL), HeartbeatAt: now,
	}
	if err := s.update(ctx, func(tx gatehouse.Tx, _ *eventLog) error { return tx.CreateImportJob(j) }); err != nil {
		return nil, err
	}
	keep = true
	jobCtx, stop := context.WithCancel(base)
	r.mu.Lock()
	r.running[id] = stop
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer stop()
		// The slot and the spool are given up before the job's end is
		// committed, so a client that sees the job finished can start the
		// next at once.
		release := sync.OnceFunc(func() {
			clear(key)
			os.Remove(r.spoolPath(id))
			r.release(id)
		})
		defer release()
		s.runImportJob(jobCtx, j, p, key, release)
	}()
	return importJobInfo(j), nil
}

// reserve takes one of the node's job slots for id, counted in r.wg until
// the job ends (or its upload fails).
func (r *jobRunner) reserve(id string) (context.Context, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.base == nil || r.base.Err() != nil {
		return nil, gatehouse.Errorf(gatehouse.EUnavailable, "this node is not running import jobs now (starting or stopping); try again shortly")
	}
	if len(r.active) >= r.cfg.MaxConcurrent {
		return nil, gatehouse.Errorf(gatehouse.ERateLimited, "this node already runs %d import jobs, its limit; try again when one has finished", r.cfg.MaxConcurrent)
	}
	r.active[id] = true
	r.wg.Add(1)
	return r.base, nil
}

func (r *jobRunner) release(id string) {
	r.mu.Lock()
	delete(r.active, id)
	delete(r.running, id)
	r.mu.Unlock()
}

// spool writes body, encrypted under key, to the job's spool file (0600,
// in a 0700 directory), refusing more than MaxUpload bytes.
func (r *jobRunner) spool(id string, key []byte, body io.Reader) error {
	if err := os.MkdirAll(r.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("import job spool: %w", err)
	}
	f, err := os.OpenFile(r.spoolPath(id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("import job spool: %w", err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 256<<10)
	sw, err := newSpoolWriter(bw, key)
	if err != nil {
		return err
	}
	n, err := io.Copy(sw, io.LimitReader(body, r.cfg.MaxUpload+1))
	if err != nil {
		return gatehouse.Errorf(gatehouse.EInvalid, "the upload broke off after %d bytes; send the file again", n)
	}
	if n > r.cfg.MaxUpload {
		return gatehouse.Errorf(gatehouse.EBodyTooLarge, "the file is larger than %d bytes, this node's limit for an import job; split it, or raise the limit (serve --import-max-upload)", r.cfg.MaxUpload)
	}
	if err := sw.Close(); err != nil {
		return fmt.Errorf("import job spool: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("import job spool: %w", err)
	}
	return f.Close()
}

// errJobCanceled stops a job at its next batch; that batch rolls back.
var errJobCanceled = gatehouse.Errorf(gatehouse.EConflict, "the import job was canceled")

// errJobEnded stops a job that has ended meanwhile without its runner
// (another node failed it when its lease lapsed); the batch that finds out
// rolls back.
var errJobEnded = gatehouse.Errorf(gatehouse.EConflict, "the import job has ended elsewhere")

// runImportJob runs a spooled job to its end and records how it ended.
// release is called once the spool is no longer needed, before the end is
// recorded.
func (s *Service) runImportJob(ctx context.Context, j *gatehouse.ImportJob, p *gatehouse.Principal, key []byte, release func()) {
	started := false
	err := s.update(ctx, func(tx gatehouse.Tx, _ *eventLog) error {
		cur, err := tx.GetImportJob(j.Scope, j.ID)
		if err != nil {
			return err
		}
		if cur.CancelRequested || cur.State.Finished() {
			return nil
		}
		now := s.timestamp()
		cur.State, cur.StartedAt, cur.HeartbeatAt, started = gatehouse.JobRunning, &now, now, true
		return tx.UpdateImportJob(cur)
	})
	if err != nil || !started {
		release()
		s.finishImportJob(ctx, j, nil, err)
		return
	}
	sum, err := s.importFromSpoolSafely(ctx, j, p, key)
	release()
	s.finishImportJob(ctx, j, sum, err)
}

// importFromSpoolSafely is importFromSpool with a panic turned into the
// job's failure: a job runs on a goroutine of its own, where a panic would
// otherwise end the whole node.
func (s *Service) importFromSpoolSafely(ctx context.Context, j *gatehouse.ImportJob, p *gatehouse.Principal, key []byte) (sum *ImportSummary, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("import job panicked", "scope", j.Scope, "job", j.ID, "panic", v, "stack", string(debug.Stack()))
			sum, err = nil, gatehouse.Errorf(gatehouse.EInternal, "the import job stopped on an internal error; the rows reported before it are committed")
		}
	}()
	return s.importFromSpool(ctx, j, p, key)
}

// importFromSpool runs the import pipeline over the decrypted spool and
// writes the result file: one line per record, then the summary, as the
// synchronous import answers.
func (s *Service) importFromSpool(ctx context.Context, j *gatehouse.ImportJob, p *gatehouse.Principal, key []byte) (*ImportSummary, error) {
	r := s.jobs
	f, err := os.Open(r.spoolPath(j.ID))
	if err != nil {
		return nil, fmt.Errorf("open import job spool: %w", err)
	}
	defer f.Close()
	body, err := newSpoolReader(bufio.NewReaderSize(f, 256<<10), key)
	if err != nil {
		return nil, err
	}
	out, err := os.OpenFile(r.resultPath(j.ID), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create import job result file: %w", err)
	}
	defer out.Close()
	bw := bufio.NewWriterSize(out, 64<<10)
	enc := json.NewEncoder(bw)
	emit := func(rs []ImportResult) error {
		for i := range rs {
			if err := enc.Encode(&rs[i]); err != nil {
				return err
			}
		}
		return bw.Flush()
	}
	run := s.ImportDevices
	if j.Kind == ImportKindEnrollments {
		run = s.ImportEnrollments
	}
	req := ImportRequest{Mode: ImportMode(j.Mode), Format: ImportFormat(j.Format), Body: body, hook: s.importJobHook(j.Scope, j.ID)}
	sum, err := run(ctx, p, j.Scope, req, emit)
	if err != nil {
		return nil, err
	}
	enc.Encode(struct {
		Summary *ImportSummary `json:"summary"`
	}{sum})
	if err := bw.Flush(); err != nil {
		return sum, fmt.Errorf("write import job result file: %w", err)
	}
	return sum, out.Close()
}

// importJobHook counts a batch into its job, in the batch's transaction,
// renews the job's lease with it, and stops the import if the job was
// canceled or has ended without it (failed by another node's sweeper).
func (s *Service) importJobHook(scope, id string) batchHook {
	return func(tx gatehouse.Tx, _ *eventLog, results []ImportResult) error {
		cur, err := tx.GetImportJob(scope, id)
		if err != nil {
			return err
		}
		if cur.State.Finished() {
			return errJobEnded
		}
		if cur.CancelRequested {
			return errJobCanceled
		}
		cur.HeartbeatAt = s.timestamp()
		var rejects []*gatehouse.ImportJobReject
		for _, r := range results {
			cur.Rows++
			switch {
			case !r.OK:
				if cur.Rejected < gatehouse.MaxImportJobRejects {
					rejects = append(rejects, &gatehouse.ImportJobReject{Row: int64(r.Row), ID: r.ID, Code: r.Code, Message: r.Message})
				}
				cur.Rejected++
			case r.Status == ImportUnchanged:
				cur.OK++
				cur.Unchanged++
			default:
				cur.OK++
			}
		}
		if err := tx.UpdateImportJob(cur); err != nil {
			return err
		}
		return tx.AddImportJobRejects(scope, id, rejects)
	}
}

// finishImportJob records how a job ended, with its import.finished event.
// It runs even when ctx has ended (the node is stopping).
func (s *Service) finishImportJob(ctx context.Context, j *gatehouse.ImportJob, sum *ImportSummary, runErr error) {
	stopping := ctx.Err() != nil
	// No renewal from now on: a renewal that finds the job finished must
	// be one that another node finished.
	s.jobs.mu.Lock()
	delete(s.jobs.running, j.ID)
	s.jobs.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if runErr != nil && gatehouse.ErrorCode(runErr) == gatehouse.EInternal {
		s.log.Error("import job failed", "scope", j.Scope, "job", j.ID, "err", runErr)
	}
	err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
		cur, err := tx.GetImportJob(j.Scope, j.ID)
		if err != nil {
			return err
		}
		if cur.State.Finished() {
			return nil
		}
		now := s.timestamp()
		cur.FinishedAt = &now
		switch {
		case sum != nil && sum.Complete:
			cur.State = gatehouse.JobSucceeded
		case cur.CancelRequested:
			cur.State = gatehouse.JobCanceled
		case stopping:
			cur.State, cur.ErrorCode, cur.ErrorMessage = gatehouse.JobFailed, gatehouse.EUnavailable, ErrImportJobNodeRestarted
		case runErr != nil:
			cur.State, cur.ErrorCode, cur.ErrorMessage = gatehouse.JobFailed, gatehouse.ErrorCode(runErr), gatehouse.ErrorMessage(runErr)
		case sum != nil && sum.Error != nil:
			cur.State, cur.ErrorCode, cur.ErrorMessage = gatehouse.JobFailed, sum.Error.Code, sum.Error.Message
		default:
			cur.State, cur.ErrorCode, cur.ErrorMessage = gatehouse.JobFailed, gatehouse.EInternal, "the import stopped early"
		}
		if err := tx.UpdateImportJob(cur); err != nil {
			return err
		}
		return appendJobFinished(ev, cur, now)
	})
	if err != nil {
		s.log.Error("record the end of an import job", "scope", j.Scope, "job", j.ID, "err", err)
	}
}

func appendJobFinished(ev *eventLog, j *gatehouse.ImportJob, now time.Time) error {
	data := map[string]any{"job": j.ID, "kind": j.Kind, "mode": j.Mode, "state": j.State,
		"rows": j.Rows, "ok": j.OK, "unchanged": j.Unchanged, "rejected": j.Rejected}
	if j.ErrorCode != "" {
		data["error"] = j.ErrorCode
	}
	return ev.append(j.Scope, EventImportFinished, j.CreatedBy, j.ID, now, data)
}

func checkJobID(id string) error {
	if !strings.HasPrefix(id, "ij-") || gatehouse.ValidateDeviceID(id) != nil {
		return gatehouse.Errorf(gatehouse.ENotFound, "import job %q not found", truncate(id, 64))
	}
	return nil
}

// GetImportJob returns one import job of scope.
func (s *Service) GetImportJob(ctx context.Context, p *gatehouse.Principal, scope, id string) (*ImportJobInfo, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	if err := checkJobID(id); err != nil {
		return nil, err
	}
	j, err := s.store.GetImportJob(ctx, scope, id)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "import job %q not found in scope %q", id, scope)
	}
	if err != nil {
		return nil, err
	}
	return importJobInfo(j), nil
}

// ListImportJobs returns scope's import jobs, newest first, a page at a time.
func (s *Service) ListImportJobs(ctx context.Context, p *gatehouse.Principal, scope, cursor string, limit int) (*ImportJobPage, error) {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return nil, err
	}
	before, err := gatehouse.DecodeCursor(cursor)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	if _, err := s.scope(ctx, scope); err != nil {
		return nil, err
	}
	js, err := s.store.ListImportJobs(ctx, gatehouse.ImportJobFilter{Scope: scope, Before: before, Limit: limit + 1})
	if err != nil {
		return nil, err
	}
	page := &ImportJobPage{Items: []*ImportJobInfo{}}
	if len(js) > limit {
		js = js[:limit]
		page.NextCursor = gatehouse.EncodeCursor(js[limit-1].ID)
	}
	for _, j := range js {
		page.Items = append(page.Items, importJobInfo(j))
	}
	return page, nil
}

// CancelImportJob asks a job to stop: it stops before its next batch (the
// batches committed stay), on whichever node runs it.
func (s *Service) CancelImportJob(ctx context.Context, p *gatehouse.Principal, scope, id string) (*ImportJobInfo, error) {
	if err := p.Authorize(scope, gatehouse.RoleOperator); err != nil {
		return nil, err
	}
	if err := checkJobID(id); err != nil {
		return nil, err
	}
	var out *gatehouse.ImportJob
	err := s.update(ctx, func(tx gatehouse.Tx, _ *eventLog) error {
		cur, err := tx.GetImportJob(scope, id)
		if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
			return gatehouse.Errorf(gatehouse.ENotFound, "import job %q not found in scope %q", id, scope)
		}
		if err != nil {
			return err
		}
		if cur.State.Finished() {
			return gatehouse.Errorf(gatehouse.EConflict, "import job %q has finished (%s); there is nothing to cancel", id, cur.State)
		}
		cur.CancelRequested = true
		out = cur
		return tx.UpdateImportJob(cur)
	})
	if err != nil {
		return nil, err
	}
	return importJobInfo(out), nil
}

// ImportJobResults is where a job's per-row results come from.
type ImportJobResults struct {
	Job *ImportJobInfo
	// Full is true when this node holds the job's result file (every
	// record, then the summary); false when only the database's copy of
	// the refused records (the first MaxImportJobRejects) is at hand.
	Full bool
	s    *Service
	file string
}

// ImportJobResults finds a job's results.
func (s *Service) ImportJobResults(ctx context.Context, p *gatehouse.Principal, scope, id string) (*ImportJobResults, error) {
	info, err := s.GetImportJob(ctx, p, scope, id)
	if err != nil {
		return nil, err
	}
	res := &ImportJobResults{Job: info, s: s}
	if s.jobs != nil && info.Node == s.jobs.cfg.Node {
		path := s.jobs.resultPath(id)
		if _, err := os.Stat(path); err == nil {
			res.Full, res.file = true, path
		}
	}
	return res, nil
}

// WriteTo writes the results as NDJSON lines, as the synchronous import
// answers: one ImportResult per record (or per refused record), then the
// summary once the job has finished.
func (r *ImportJobResults) WriteTo(ctx context.Context, w io.Writer) error {
	if r.Full {
		b, err := os.ReadFile(r.file)
		if err != nil {
			return fmt.Errorf("read import job result file: %w", err)
		}
		// A running job's file may end inside a batch being written.
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			b = b[:i+1]
		} else {
			b = nil
		}
		_, err = w.Write(b)
		return err
	}
	enc := json.NewEncoder(w)
	after := int64(0)
	for {
		rs, err := r.s.store.ListImportJobRejects(ctx, r.Job.Scope, r.Job.ID, after, 1000)
		if err != nil {
			return err
		}
		for _, x := range rs {
			if err := enc.Encode(ImportResult{Row: int(x.Row), ID: x.ID, Code: x.Code, Message: x.Message}); err != nil {
				return err
			}
			after = x.Row
		}
		if len(rs) < 1000 {
			break
		}
	}
	if !r.Job.State.Finished() {
		return nil
	}
	j := r.Job
	sum := &ImportSummary{Rows: int(j.Rows), OK: int(j.OK), Rejected: int(j.Rejected), Unchanged: int(j.Unchanged),
		Complete: j.State == gatehouse.JobSucceeded, Error: j.Error}
	return enc.Encode(struct {
		Summary *ImportSummary `json:"summary"`
	}{sum})
}

// StartImportJobs readies this node to run import jobs until ctx ends:
// it creates the spool directory and fails the jobs an earlier run of this
// node left unfinished. A node calls it before it serves requests, so
// that a job submitted as soon as it answers finds it ready; RunImportJobs
// calls it too (a second call does nothing).
func (s *Service) StartImportJobs(ctx context.Context) {
	r := s.jobs
	if r == nil {
		return
	}
	r.mu.Lock()
	started := r.base != nil
	r.mu.Unlock()
	if started {
		return
	}
	if err := os.MkdirAll(r.cfg.Dir, 0o700); err != nil {
		s.log.Error("import jobs: create directory", "err", err)
	}
	os.Chmod(r.cfg.Dir, 0o700)
	if err := s.recoverImportJobs(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("import jobs: recover after restart", "err", err)
	}
	r.mu.Lock()
	r.base = ctx
	r.mu.Unlock()
}

// RunImportJobs runs this node's import jobs until ctx ends: first it marks
// failed the jobs it was running before it restarted (their spools cannot
// be read any more), then it accepts jobs, renews its lease on those it
// runs every HeartbeatInterval, fails any node's jobs whose lease has
// lapsed, and deletes expired jobs. When ctx ends, running jobs stop before
// their next batch and are marked failed; RunImportJobs returns once they
// have.
func (s *Service) RunImportJobs(ctx context.Context) {
	r := s.jobs
	if r == nil {
		<-ctx.Done()
		return
	}
	s.StartImportJobs(ctx)
	sweep := time.NewTicker(r.cfg.SweepInterval)
	defer sweep.Stop()
	heartbeat := time.NewTicker(r.cfg.HeartbeatInterval)
	defer heartbeat.Stop()
	for {
		if err := s.SweepImportJobs(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("import jobs: sweep", "err", err)
		}
	heartbeats:
		for {
			select {
			case <-ctx.Done():
				// No job starts after this; wait for the running ones.
				r.mu.Lock()
				r.base = nil
				r.mu.Unlock()
				r.wg.Wait()
				return
			case <-heartbeat.C:
				// Renews this node's leases, then fails lapsed ones: a
				// lapsed lease is found within a heartbeat, not a sweep.
				if err := s.failLapsedImportJobs(ctx); err != nil && ctx.Err() == nil {
					s.log.Error("import jobs: renew leases, fail jobs whose lease lapsed", "node", r.cfg.Node, "err", err)
				}
			case <-sweep.C:
				break heartbeats
			}
		}
	}
}

// RenewImportJobLeases renews this node's lease on the import jobs it runs,
// in one statement for all of them, and stops those that have ended
// meanwhile without it (another node failed them when their lease lapsed:
// this node was cut off, or paused, for longer than the lease).
// RunImportJobs calls it every HeartbeatInterval.
func (s *Service) RenewImportJobLeases(ctx context.Context) error {
	r, err := s.jobRunner()
	if err != nil {
		return err
	}
	// Only jobs whose row had committed before this snapshot: each of
	// them is either renewed or has ended.
	r.mu.Lock()
	stops := make(map[string]context.CancelFunc, len(r.running))
	ids := make([]string, 0, len(r.running))
	for id, stop := range r.running {
		stops[id] = stop
		ids = append(ids, id)
	}
	r.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	var renewed []string
	err = s.update(ctx, func(tx gatehouse.Tx, _ *eventLog) error {
		var err error
		renewed, err = tx.RenewImportJobs(r.cfg.Node, ids, s.timestamp())
		return err
	})
	if err != nil {
		return err
	}
	for _, id := range renewed {
		delete(stops, id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, stop := range stops {
		// Gone from running: the job finished here meanwhile.
		if _, ok := r.running[id]; ok {
			s.log.Warn("import job ended elsewhere (its lease had lapsed); stopping it", "node", r.cfg.Node, "job", id)
			stop()
		}
	}
	return nil
}

// failLapsedImportJobs fails the unfinished jobs, of any node, whose
// heartbeat is older than the lease, each with its import.finished event.
// It renews this node's own leases first: a node back from a pause longer
// than the lease (a suspended laptop, a stalled VM) keeps the jobs it is
// still running instead of failing them itself.
func (s *Service) failLapsedImportJobs(ctx context.Context) error {
	r := s.jobs
	// A renewal that fails (the database, for a moment) does not stop the
	// rest: other nodes' lapsed jobs are still failed, this node's are
	// left alone.
	renewErr := s.RenewImportJobLeases(ctx)
	if renewErr != nil {
		renewErr = fmt.Errorf("renew leases: %w", renewErr)
	}
	now := s.timestamp()
	cutoff := now.Add(-r.cfg.Lease)
	before := ""
	for {
		js, err := s.store.ListImportJobs(ctx, gatehouse.ImportJobFilter{Unfinished: true, HeartbeatBefore: cutoff, Before: before, Limit: 100})
		if err != nil {
			return errors.Join(renewErr, err)
		}
		for _, j := range js {
			before = j.ID
			if renewErr != nil && j.Node == r.cfg.Node {
				continue
			}
			var failed *gatehouse.ImportJob
			err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
				failed = nil
				cur, err := tx.GetImportJob(j.Scope, j.ID)
				if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
					return nil
				}
				// Read again under the row's lock: its node may have
				// renewed the lease, or finished the job, meanwhile.
				if err != nil || cur.State.Finished() || !cur.HeartbeatAt.Before(cutoff) {
					return err
				}
				cur.State, cur.FinishedAt = gatehouse.JobFailed, &now
				cur.ErrorCode, cur.ErrorMessage = ImportJobLeaseExpired, leaseExpiredMessage(cur, r.cfg.Lease)
				if err := tx.UpdateImportJob(cur); err != nil {
					return err
				}
				failed = cur
				return appendJobFinished(ev, cur, now)
			})
			if err != nil {
				return errors.Join(renewErr, err)
			}
			if failed != nil {
				s.log.Warn("import job failed: its node stopped renewing its lease", "scope", failed.Scope, "job", failed.ID,
					"node", failed.Node, "heartbeat", failed.HeartbeatAt, "lease", r.cfg.Lease)
			}
		}
		if len(js) < 100 {
			return renewErr
		}
	}
}

// recoverImportJobs fails the unfinished jobs of this node (it restarted)
// and removes their spools.
func (s *Service) recoverImportJobs(ctx context.Context) error {
	r := s.jobs
	for {
		js, err := s.store.ListImportJobs(ctx, gatehouse.ImportJobFilter{Node: r.cfg.Node, Unfinished: true, Limit: 100})
		if err != nil {
			return err
		}
		for _, j := range js {
			err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
				cur, err := tx.GetImportJob(j.Scope, j.ID)
				if err != nil || cur.State.Finished() {
					return err
				}
				now := s.timestamp()
				cur.State, cur.FinishedAt = gatehouse.JobFailed, &now
				cur.ErrorCode, cur.ErrorMessage = gatehouse.EUnavailable, ErrImportJobNodeRestarted
				if err := tx.UpdateImportJob(cur); err != nil {
					return err
				}
				return appendJobFinished(ev, cur, now)
			})
			if err != nil {
				return err
			}
		}
		if len(js) < 100 {
			break
		}
	}
	entries, _ := os.ReadDir(r.cfg.Dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".spool") {
			os.Remove(filepath.Join(r.cfg.Dir, e.Name()))
		}
	}
	return nil
}

// SweepImportJobs fails the unfinished jobs (of any node) whose lease has
// lapsed, and deletes expired jobs (of every scope, with their refused
// records) and this node's result files older than the TTL.
func (s *Service) SweepImportJobs(ctx context.Context) error {
	r, err := s.jobRunner()
	if err != nil {
		return err
	}
	// Expired jobs are deleted even when the leases could not be handled.
	lapseErr := s.failLapsedImportJobs(ctx)
	now := s.timestamp()
	for {
		js, err := s.store.ListImportJobs(ctx, gatehouse.ImportJobFilter{ExpiresBefore: now, Limit: 100})
		if err != nil {
			return errors.Join(lapseErr, err)
		}
		for _, j := range js {
			err := s.update(ctx, func(tx gatehouse.Tx, _ *eventLog) error { return tx.DeleteImportJob(j.Scope, j.ID) })
			if err != nil && gatehouse.ErrorCode(err) != gatehouse.ENotFound {
				return errors.Join(lapseErr, err)
			}
			if j.Node == r.cfg.Node {
				os.Remove(r.resultPath(j.ID))
			}
		}
		if len(js) < 100 {
			break
		}
	}
	entries, _ := os.ReadDir(r.cfg.Dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".results.ndjson") {
			continue
		}
		if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > r.cfg.TTL {
			os.Remove(filepath.Join(r.cfg.Dir, e.Name()))
		}
	}
	return lapseErr
}
