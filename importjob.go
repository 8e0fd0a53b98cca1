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
	Limit         int // <= 0 means 100
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
	// StartedAt, FinishedAt). ENotFound if it does not exist.
	UpdateImportJob(j *ImportJob) error
	// AddImportJobRejects stores refused records of a job.
	AddImportJobRejects(scope, id string, rs []*ImportJobReject) error
	// DeleteImportJob removes a job and its refused records (ENotFound if
	// missing).
	DeleteImportJob(scope, id string) error
}
