package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// tx is the gatehouse.Tx handed to fn: statements on the writer's connection,
// inside the batch transaction and fn's savepoint.
type tx struct{ w *writer }

var _ gatehouse.Tx = (*tx)(nil)

// bg is the context of statements inside a batch; see runBatch.
var bg = context.Background()

func (t *tx) q() *stmtCache { return t.w.stmts }

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromNullMicros(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMicros(n.Int64)
	return &t
}
