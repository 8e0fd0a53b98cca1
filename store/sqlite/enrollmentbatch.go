package sqlite

import (
	"fmt"

	"github.com/gatehouse-iot/gatehouse"
)

// enrollmentChunk is how many enrollments one INSERT writes (14 values
// each; see devicebatch.go for why statements are multi-row).
const enrollmentChunk = 64

// GetEnrollments implements gatehouse.Tx. The writer holds the database's
// one write lock, so what it reads cannot change before the batch commits.
func (t *tx) GetEnrollments(scope string, ids []string) (map[string]*gatehouse.Enrollment, error) {
	out := make(map[string]*gatehouse.Enrollment, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), lookupChunk)
		args := make([]any, 0, n+1)
		args = append(args, scope)
		args = appendStrings(args, ids[:n])
		rows, err := t.q().query(bg, `SELECT `+enrollmentColumns+` FROM enrollments WHERE scope = ? AND id IN (`+placeholders(n)+`)`, args...)
		if err != nil {
			return nil, storeError("get enrollments", err, "enrollments", "")
		}
		for rows.Next() {
			e, err := scanEnrollment(rows)
			if err != nil {
				rows.Close()
				return nil, storeError("get enrollments", err, "enrollments", "")
			}
			out[e.ID] = e
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, storeError("get enrollments", err, "enrollments", "")
		}
		ids = ids[n:]
	}
	return out, nil
}

// CreateEnrollments implements gatehouse.Tx, inside a savepoint of its own
// so that a conflict part way leaves nothing behind.
func (t *tx) CreateEnrollments(es []*gatehouse.Enrollment) error {
	if len(es) == 0 {
		return nil
	}
	if err := t.w.exec(`SAVEPOINT bulk`); err != nil {
		return storeError("create enrollments", err, "enrollments", "")
	}
	err := t.createEnrollments(es)
	if err != nil {
		if rerr := t.w.exec(`ROLLBACK TO bulk`); rerr != nil {
			return storeError("create enrollments", rerr, "enrollments", "")
		}
	}
	if rerr := t.w.exec(`RELEASE bulk`); rerr != nil && err == nil {
		err = storeError("create enrollments", rerr, "enrollments", "")
	}
	return err
}

func (t *tx) createEnrollments(es []*gatehouse.Enrollment) error {
	scope := es[0].Scope
	for start := 0; start < len(es); start += enrollmentChunk {
		chunk := es[start:min(len(es), start+enrollmentChunk)]
		args := make([]any, 0, enrollmentValues*len(chunk))
		for _, e := range chunk {
			a, err := enrollmentArgs(e)
			if err != nil {
				return fmt.Errorf("create enrollments: encode: %w", err)
			}
			args = append(args, a...)
		}
		q := `INSERT INTO enrollments (` + enrollmentColumns + `) VALUES ` + rowsOf(len(chunk), enrollmentValues)
		if _, err := t.q().exec(bg, q, args...); err != nil {
			return storeError("create enrollments", err, fmt.Sprintf("one of %d enrollments in scope %q", len(es), scope), fmt.Sprintf("scope %q", scope))
		}
	}
	return nil
}
