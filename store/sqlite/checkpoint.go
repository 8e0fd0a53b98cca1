package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"sync/atomic"
	"time"
)

// WAL checkpoints run beside the writer, not in it.
//
// SQLite's automatic checkpoint runs inside the COMMIT that crosses the
// threshold: it copies the WAL's pages into the database file and fsyncs the
// file, while the single writer, and with it every Update queued behind, waits.
// Under a steady stream of registrations that stall recurs several times a
// second and leaves the CPUs idle. Here a checkpointer goroutine, on its own
// connection, runs PASSIVE checkpoints (they block neither the writer nor the
// readers) a moment after commits, so the copying and the database fsync
// overlap the writer's work. The writer keeps a high automatic threshold
// (walAutoCheckpoint pages) only as a backstop: when it trips, most pages
// are already copied, and the checkpoint it runs catches up with the last
// frames so that SQLite can restart the WAL from its beginning, which bounds
// the file's size. Durability is unchanged: every COMMIT still fsyncs the WAL
// (synchronous=FULL) before Update returns.
const (
	walAutoCheckpoint  = 8000 // pages (32 MiB of WAL with 4 KiB pages)
	checkpointInterval = 100 * time.Millisecond
)

type checkpointer struct {
	db      *sql.DB
	kick    chan struct{} // a commit happened
	stop    chan struct{}
	stopped chan struct{}

	runs   atomic.Int64 // checkpoints run
	frames atomic.Int64 // WAL frames in the log at the last checkpoint
}

func newCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go c.run()
	return c
}

// committed tells the checkpointer that the WAL grew. It never blocks.
func (c *checkpointer) committed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.stopped)
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		// Let commits gather for a moment: one checkpoint copies each
		// page once however often it changed.
		t.Reset(checkpointInterval)
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-t.C:
		}
		var busy, logFrames, done int64
		err := c.db.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &done)
		if err != nil {
			slog.Warn("sqlite checkpoint failed", "err", err)
			continue
		}
		c.runs.Add(1)
		c.frames.Store(logFrames)
	}
}

func (c *checkpointer) close() error {
	close(c.stop)
	<-c.stopped
	return c.db.Close()
}
