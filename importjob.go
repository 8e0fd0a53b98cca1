package gatehouse

import (
	"context"
	"time"
)

// ImportJobState is where an import job is in its life.
type ImportJobState string

// Import job states. Queued and running are unfinished; the others are
// final.
const (
	JobQueued    ImportJobState = "queued"
	JobRunning   ImportJobState = "running"
	JobSucceeded ImportJobState = "succeeded"
	JobFailed    ImportJobState = "failed"
	JobCanceled  ImportJobState = "canceled"
)

// Finished reports whether s is a final state.
func (s ImportJobState) Finished() bool {
	return s == JobSucceeded || s == JobFailed || s == JobCanceled
}

// ImportJob is a bulk import run in the background: its file is spooled,
// encrypted, on the node that took the upload (Node), and its progress is
// written in the same transaction as each batch it counts, so that any node
// sharing the database can answer its status and never counts rows that did
// not commit.
type ImportJob struct {
	Scope     string
	ID        string // sorts by creation time
	Kind      string // devices or enrollments
	Mode      string
	Format    string
	State     ImportJobState
	Node      string // the node that holds the spool and runs the job
	CreatedBy string

	Rows      int64 // records processed (committed or refused)
	OK        int64
	Unchanged int64
	Rejected  int64

	// CancelRequested asks the runner to stop before its next batch.
	CancelRequested bool
	ErrorCode       string
	ErrorMessage    string

	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	ExpiresAt  time.Time // the sweeper deletes the job after this
	// HeartbeatAt is when Node last renewed its lease on the job (at
	// creation, then periodically and with every batch it commits). An
	// unfinished job whose heartbeat is older than the lease belongs to a
	// node that stopped: any node's sweeper fails it.
	HeartbeatAt time.Time
}

// ImportJobReject is a record an import job refused, kept with the job
// (the first MaxImportJobRejects of them).
type ImportJobReject struct {
	Row     int64
	ID      string
	Code    string
	Message string
}

// MaxImportJobRejects bounds the refused records a job keeps in the
// database; the full result file stays on the node that ran the job.
const MaxImportJobRejects = 10_000

// ImportJobFilter selects import jobs. Empty fields match everything.
type ImportJobFilter struct {
	Scope string
	// Before continues a newest-first listing: only jobs with ID < Before.
	Before string
	Node   string
	// Unfinished selects queued and running jobs only.
	Unfinished bool
	// ExpiresBefore selects jobs whose ExpiresAt is before it.
	ExpiresBefore time.Time
	// HeartbeatBefore selects jobs whose HeartbeatAt is before it (with
	// Unfinished: the jobs whose lease has lapsed).
	HeartbeatBefore time.Time
	Limit           int // <= 0 means 100
}

// ImportJobReader is the read side of import jobs, part of Reader.
type ImportJobReader interface {
	// GetImportJob returns one job (ENotFound if missing).
	GetImportJob(ctx context.Context, scope, id string) (*ImportJob, error)
	// ListImportJobs returns up to f.Limit jobs matching f, newest (highest
	// ID) first; with f.Scope empty, of every scope.
	ListImportJobs(ctx context.Context, f ImportJobFilter) ([]*ImportJob, error)
	// ListImportJobRejects returns up to limit refused records of a job
	// with Row > afterRow, in row order. limit <= 0 means 1000.
	ListImportJobRejects(ctx context.Context, scope, id string, afterRow int64, limit int) ([]*ImportJobReject, error)
}

// ImportJobTx is the write side of import jobs, part of Tx.
type ImportJobTx interface {
	// CreateImportJob stores a new job (EConflict on a duplicate ID).
	CreateImportJob(j *ImportJob) error
	// GetImportJob returns a job, locking it until the transaction ends.
	GetImportJob(scope, id string) (*ImportJob, error)
	// UpdateImportJob replaces a job's mutable fields (State, Rows, OK,
	// Unchanged, Rejected, CancelRequested, ErrorCode, ErrorMessage,
	// StartedAt, FinishedAt, HeartbeatAt). ENotFound if it does not exist.
	UpdateImportJob(j *ImportJob) error
	// RenewImportJobs sets HeartbeatAt to at on the jobs of node named by
	// ids that are still unfinished, in one statement, and returns the IDs
	// it renewed (in no particular order). A job of ids missing from them
	// has finished meanwhile, or was deleted: its runner must stop.
	RenewImportJobs(node string, ids []string, at time.Time) ([]string, error)
	// AddImportJobRejects stores refused records of a job.
	AddImportJobRejects(scope, id string, rs []*ImportJobReject) error
	// DeleteImportJob removes a job and its refused records (ENotFound if
	// missing).
	DeleteImportJob(scope, id string) error
}
