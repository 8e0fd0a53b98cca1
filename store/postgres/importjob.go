package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/jackc/pgx/v5"
)

const importJobColumns = `scope, id, kind, mode, format, state, node, created_by, rows_done, ok, unchanged, rejected,
	cancel_requested, error_code, error_message, created_at, started_at, finished_at, expires_at, heartbeat_at`

// unfinishedJobs is the condition of unfinished jobs, as the partial index
// import_jobs_lease_idx states it.
const unfinishedJobs = `state IN ('queued', 'running')`

func scanImportJob(row pgx.Row) (*gatehouse.ImportJob, error) {
	var j gatehouse.ImportJob
	var state string
	if err := row.Scan(&j.Scope, &j.ID, &j.Kind, &j.Mode, &j.Format, &state, &j.Node, &j.CreatedBy, &j.Rows, &j.OK,
		&j.Unchanged, &j.Rejected, &j.CancelRequested, &j.ErrorCode, &j.ErrorMessage, &j.CreatedAt, &j.StartedAt,
		&j.FinishedAt, &j.ExpiresAt, &j.HeartbeatAt); err != nil {
		return nil, err
	}
	j.State = gatehouse.ImportJobState(state)
	j.CreatedAt, j.ExpiresAt, j.HeartbeatAt = j.CreatedAt.UTC(), j.ExpiresAt.UTC(), j.HeartbeatAt.UTC()
	if j.StartedAt != nil {
		t := j.StartedAt.UTC()
		j.StartedAt = &t
	}
	if j.FinishedAt != nil {
		t := j.FinishedAt.UTC()
		j.FinishedAt = &t
	}
	return &j, nil
}

func getImportJob(ctx context.Context, q querier, scope, id, lock string) (*gatehouse.ImportJob, error) {
	j, err := scanImportJob(q.QueryRow(ctx, `SELECT `+importJobColumns+` FROM import_jobs WHERE scope = $1 AND id = $2`+lock, scope, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gatehouse.Errorf(gatehouse.ENotFound, "import job %q not found", id)
	}
	return j, mapErr("get import job", err)
}

func (s *Store) GetImportJob(ctx context.Context, scope, id string) (*gatehouse.ImportJob, error) {
	return getImportJob(ctx, s.pool, scope, id, "")
}

func (s *Store) ListImportJobs(ctx context.Context, f gatehouse.ImportJobFilter) ([]*gatehouse.ImportJob, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Scope != "" {
		add(`scope = $%d`, f.Scope)
	}
	if f.Before != "" {
		add(`id < $%d`, f.Before)
	}
	if f.Node != "" {
		add(`node = $%d`, f.Node)
	}
	if f.Unfinished {
		// Literals, not a parameter: a generic plan uses the partial index
		// import_jobs_lease_idx only for a WHERE that implies its own.
		where = append(where, unfinishedJobs)
	}
	if !f.ExpiresBefore.IsZero() {
		add(`expires_at < $%d`, f.ExpiresBefore)
	}
	if !f.HeartbeatBefore.IsZero() {
		add(`heartbeat_at < $%d`, f.HeartbeatBefore)
	}
	q := `SELECT ` + importJobColumns + ` FROM import_jobs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(` ORDER BY id DESC, scope LIMIT $%d`, len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, mapErr("list import jobs", err)
	}
	js, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*gatehouse.ImportJob, error) { return scanImportJob(row) })
	return js, mapErr("list import jobs", err)
}

func (s *Store) ListImportJobRejects(ctx context.Context, scope, id string, afterRow int64, limit int) ([]*gatehouse.ImportJobReject, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT row, id, code, message FROM import_job_rejects
		WHERE scope = $1 AND job_id = $2 AND row > $3 ORDER BY row LIMIT $4`, scope, id, afterRow, limit)
	if err != nil {
		return nil, mapErr("list import job rejects", err)
	}
	rs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*gatehouse.ImportJobReject, error) {
		var r gatehouse.ImportJobReject
		return &r, row.Scan(&r.Row, &r.ID, &r.Code, &r.Message)
	})
	return rs, mapErr("list import job rejects", err)
}

func (t *Tx) CreateImportJob(j *gatehouse.ImportJob) error {
	tag, err := t.tx.Exec(t.ctx, `INSERT INTO import_jobs (`+importJobColumns+`)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20
		WHERE EXISTS (SELECT 1 FROM scopes WHERE id = $1)
		ON CONFLICT DO NOTHING`,
		j.Scope, j.ID, j.Kind, j.Mode, j.Format, string(j.State), j.Node, j.CreatedBy, j.Rows, j.OK, j.Unchanged,
		j.Rejected, j.CancelRequested, j.ErrorCode, j.ErrorMessage, j.CreatedAt, j.StartedAt, j.FinishedAt, j.ExpiresAt,
		j.HeartbeatAt)
	if err != nil {
		return t.fail("create import job", err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := getScope(t.ctx, t.tx, j.Scope); err != nil {
			return t.check(err)
		}
		return gatehouse.Errorf(gatehouse.EConflict, "import job %q already exists", j.ID)
	}
	return nil
}

func (t *Tx) GetImportJob(scope, id string) (*gatehouse.ImportJob, error) {
	j, err := getImportJob(t.ctx, t.tx, scope, id, " FOR UPDATE")
	return j, t.check(err)
}

func (t *Tx) UpdateImportJob(j *gatehouse.ImportJob) error {
	tag, err := t.tx.Exec(t.ctx, `UPDATE import_jobs SET state = $3, rows_done = $4, ok = $5, unchanged = $6,
		rejected = $7, cancel_requested = $8, error_code = $9, error_message = $10, started_at = $11, finished_at = $12,
		heartbeat_at = $13
		WHERE scope = $1 AND id = $2`,
		j.Scope, j.ID, string(j.State), j.Rows, j.OK, j.Unchanged, j.Rejected, j.CancelRequested, j.ErrorCode,
		j.ErrorMessage, j.StartedAt, j.FinishedAt, j.HeartbeatAt)
	return t.oneRow("update import job", tag, err, "import job", j.ID)
}

// RenewImportJobs implements gatehouse.Tx. Under READ COMMITTED the UPDATE
// waits for a transaction holding a job's row (a batch, or a sweeper
// failing the job) and then checks the state again, so a job failed by
// another node is never renewed.
func (t *Tx) RenewImportJobs(node string, ids []string, at time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := t.tx.Query(t.ctx, `UPDATE import_jobs SET heartbeat_at = $1
		WHERE node = $2 AND id = ANY($3) AND `+unfinishedJobs+` RETURNING id`, at, node, ids)
	if err != nil {
		return nil, t.fail("renew import jobs", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, t.fail("renew import jobs", err)
	}
	return out, nil
}

func (t *Tx) AddImportJobRejects(scope, id string, rs []*gatehouse.ImportJobReject) error {
	if len(rs) == 0 {
		return nil
	}
	rows := make([]int64, len(rs))
	ids := make([]string, len(rs))
	codes := make([]string, len(rs))
	msgs := make([]string, len(rs))
	for i, r := range rs {
		rows[i], ids[i], codes[i], msgs[i] = r.Row, r.ID, r.Code, r.Message
	}
	tag, err := t.tx.Exec(t.ctx, `INSERT INTO import_job_rejects (scope, job_id, row, id, code, message)
		SELECT $1, $2, r.row, r.id, r.code, r.message FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[]) AS r(row, id, code, message)
		WHERE EXISTS (SELECT 1 FROM import_jobs WHERE scope = $1 AND id = $2)
		ON CONFLICT (scope, job_id, row) DO UPDATE SET id = EXCLUDED.id, code = EXCLUDED.code, message = EXCLUDED.message`,
		scope, id, rows, ids, codes, msgs)
	return t.oneRow("add import job rejects", tag, err, "import job", id)
}

func (t *Tx) DeleteImportJob(scope, id string) error {
	if _, err := t.tx.Exec(t.ctx, `DELETE FROM import_job_rejects WHERE scope = $1 AND job_id = $2`, scope, id); err != nil {
		return t.fail("delete import job", err)
	}
	tag, err := t.tx.Exec(t.ctx, `DELETE FROM import_jobs WHERE scope = $1 AND id = $2`, scope, id)
	return t.oneRow("delete import job", tag, err, "import job", id)
}
