package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

const importJobColumns = `scope, id, kind, mode, format, state, node, created_by, rows_done, ok, unchanged, rejected,
	cancel_requested, error_code, error_message, created_at, started_at, finished_at, expires_at, heartbeat_at`

// unfinishedJobs is the condition of unfinished jobs, as the partial index
// import_jobs_lease states it.
const unfinishedJobs = `state IN ('queued', 'running')`

func importJobName(scope, id string) string {
	return fmt.Sprintf("import job %q in scope %q", id, scope)
}

func scanImportJob(sc scanner) (*gatehouse.ImportJob, error) {
	var j gatehouse.ImportJob
	var state string
	var cancel int64
	var created, expires, heartbeat int64
	var started, finished sql.NullInt64
	if err := sc.Scan(&j.Scope, &j.ID, &j.Kind, &j.Mode, &j.Format, &state, &j.Node, &j.CreatedBy, &j.Rows, &j.OK,
		&j.Unchanged, &j.Rejected, &cancel, &j.ErrorCode, &j.ErrorMessage, &created, &started, &finished, &expires,
		&heartbeat); err != nil {
		return nil, err
	}
	j.State, j.CancelRequested = gatehouse.ImportJobState(state), cancel != 0
	j.CreatedAt, j.ExpiresAt, j.HeartbeatAt = fromMicros(created), fromMicros(expires), fromMicros(heartbeat)
	j.StartedAt, j.FinishedAt = fromNullMicros(started), fromNullMicros(finished)
	return &j, nil
}

func getImportJob(ctx context.Context, c *stmtCache, scope, id string) (*gatehouse.ImportJob, error) {
	j, err := scanImportJob(c.queryRow(ctx, `SELECT `+importJobColumns+` FROM import_jobs WHERE scope = ? AND id = ?`, scope, id))
	if err != nil {
		return nil, storeError("get import job", err, importJobName(scope, id), "")
	}
	return j, nil
}

// GetImportJob implements gatehouse.Reader.
func (s *Store) GetImportJob(ctx context.Context, scope, id string) (*gatehouse.ImportJob, error) {
	return getImportJob(ctx, s.reads, scope, id)
}

// ListImportJobs implements gatehouse.Reader.
func (s *Store) ListImportJobs(ctx context.Context, f gatehouse.ImportJobFilter) ([]*gatehouse.ImportJob, error) {
	q, args := importJobQuery(f)
	rows, err := s.reads.query(ctx, q, args...)
	if err != nil {
		return nil, storeError("list import jobs", err, "import jobs", "")
	}
	defer rows.Close()
	var out []*gatehouse.ImportJob
	for rows.Next() {
		j, err := scanImportJob(rows)
		if err != nil {
			return nil, storeError("list import jobs", err, "import jobs", "")
		}
		out = append(out, j)
	}
	return out, storeError("list import jobs", rows.Err(), "import jobs", "")
}

// importJobQuery returns ListImportJobs' query and its arguments.
func importJobQuery(f gatehouse.ImportJobFilter) (string, []any) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var where []string
	var args []any
	if f.Scope != "" {
		where, args = append(where, `scope = ?`), append(args, f.Scope)
	}
	if f.Before != "" {
		where, args = append(where, `id < ?`), append(args, f.Before)
	}
	if f.Node != "" {
		where, args = append(where, `node = ?`), append(args, f.Node)
	}
	if f.Unfinished {
		// Literals, not parameters: SQLite uses the partial index
		// import_jobs_lease only for a WHERE that repeats its own.
		where = append(where, unfinishedJobs)
	}
	if !f.ExpiresBefore.IsZero() {
		where, args = append(where, `expires_at < ?`), append(args, micros(f.ExpiresBefore))
	}
	if !f.HeartbeatBefore.IsZero() {
		where, args = append(where, `heartbeat_at < ?`), append(args, micros(f.HeartbeatBefore))
	}
	q := `SELECT ` + importJobColumns + ` FROM import_jobs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY id DESC, scope LIMIT ?`
	return q, append(args, f.Limit)
}

// ListImportJobRejects implements gatehouse.Reader.
func (s *Store) ListImportJobRejects(ctx context.Context, scope, id string, afterRow int64, limit int) ([]*gatehouse.ImportJobReject, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.reads.query(ctx, `SELECT row, id, code, message FROM import_job_rejects
		WHERE scope = ? AND job_id = ? AND row > ? ORDER BY row LIMIT ?`, scope, id, afterRow, limit)
	if err != nil {
		return nil, storeError("list import job rejects", err, importJobName(scope, id), "")
	}
	defer rows.Close()
	var out []*gatehouse.ImportJobReject
	for rows.Next() {
		var r gatehouse.ImportJobReject
		if err := rows.Scan(&r.Row, &r.ID, &r.Code, &r.Message); err != nil {
			return nil, storeError("list import job rejects", err, importJobName(scope, id), "")
		}
		out = append(out, &r)
	}
	return out, storeError("list import job rejects", rows.Err(), importJobName(scope, id), "")
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (t *tx) CreateImportJob(j *gatehouse.ImportJob) error {
	_, err := t.q().exec(bg, `INSERT INTO import_jobs (`+importJobColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.Scope, j.ID, j.Kind, j.Mode, j.Format, string(j.State), j.Node, j.CreatedBy, j.Rows, j.OK, j.Unchanged, j.Rejected,
		boolInt(j.CancelRequested), j.ErrorCode, j.ErrorMessage, micros(j.CreatedAt), nullMicros(j.StartedAt),
		nullMicros(j.FinishedAt), micros(j.ExpiresAt), micros(j.HeartbeatAt))
	return storeError("create import job", err, importJobName(j.Scope, j.ID), fmt.Sprintf("scope %q", j.Scope))
}

// GetImportJob implements gatehouse.Tx; the single writer is the lock.
func (t *tx) GetImportJob(scope, id string) (*gatehouse.ImportJob, error) {
	return getImportJob(bg, t.q(), scope, id)
}

func (t *tx) UpdateImportJob(j *gatehouse.ImportJob) error {
	res, err := t.q().exec(bg, `UPDATE import_jobs SET state = ?, rows_done = ?, ok = ?, unchanged = ?, rejected = ?,
		cancel_requested = ?, error_code = ?, error_message = ?, started_at = ?, finished_at = ?, heartbeat_at = ?
		WHERE scope = ? AND id = ?`,
		string(j.State), j.Rows, j.OK, j.Unchanged, j.Rejected, boolInt(j.CancelRequested), j.ErrorCode, j.ErrorMessage,
		nullMicros(j.StartedAt), nullMicros(j.FinishedAt), micros(j.HeartbeatAt), j.Scope, j.ID)
	return affectedOne("update import job", res, err, importJobName(j.Scope, j.ID))
}

// RenewImportJobs implements gatehouse.Tx. A node runs a handful of jobs
// (its MaxConcurrent), so the IDs fit one statement.
func (t *tx) RenewImportJobs(node string, ids []string, at time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, 0, len(ids)+2)
	args = append(args, micros(at), node)
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := t.q().query(bg, `UPDATE import_jobs SET heartbeat_at = ? WHERE node = ? AND `+unfinishedJobs+`
		AND id IN (?`+strings.Repeat(`, ?`, len(ids)-1)+`) RETURNING id`, args...)
	if err != nil {
		return nil, storeError("renew import jobs", err, "import jobs", "")
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, storeError("renew import jobs", err, "import jobs", "")
		}
		out = append(out, id)
	}
	return out, storeError("renew import jobs", rows.Err(), "import jobs", "")
}

func (t *tx) AddImportJobRejects(scope, id string, rs []*gatehouse.ImportJobReject) error {
	for _, r := range rs {
		if _, err := t.q().exec(bg, `INSERT INTO import_job_rejects (scope, job_id, row, id, code, message) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (scope, job_id, row) DO UPDATE SET id = excluded.id, code = excluded.code, message = excluded.message`,
			scope, id, r.Row, r.ID, r.Code, r.Message); err != nil {
			return storeError("add import job rejects", err, importJobName(scope, id), importJobName(scope, id))
		}
	}
	return nil
}

func (t *tx) DeleteImportJob(scope, id string) error {
	if _, err := t.q().exec(bg, `DELETE FROM import_job_rejects WHERE scope = ? AND job_id = ?`, scope, id); err != nil {
		return storeError("delete import job", err, importJobName(scope, id), "")
	}
	res, err := t.q().exec(bg, `DELETE FROM import_jobs WHERE scope = ? AND id = ?`, scope, id)
	return affectedOne("delete import job", res, err, importJobName(scope, id))
}
