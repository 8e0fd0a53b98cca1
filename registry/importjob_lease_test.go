package registry_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// testClock is a clock a test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Now().UTC().Truncate(time.Microsecond)}
}

func (c *testClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// mortalStore is a node's view of the database that can die: once dead,
// every transaction fails before it reaches the database, as if the node
// had lost power (nothing it does afterwards is recorded).
type mortalStore struct {
	gatehouse.Store
	delay time.Duration
	dead  *atomic.Bool
}

func (s mortalStore) Update(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	time.Sleep(s.delay)
	if s.dead.Load() {
		return gatehouse.Errorf(gatehouse.EUnavailable, "test: this node is dead")
	}
	return s.Store.Update(ctx, fn)
}

// finishedEvents returns the import.finished events of job.
func finishedEvents(t *testing.T, n *jobNode, job string) []map[string]any {
	t.Helper()
	evs, err := n.reg.Events(context.Background(), n.admin, "default", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range evs {
		if e.Type != registry.EventImportFinished || e.Subject != job {
			continue
		}
		var data map[string]any
		if err := json.Unmarshal(e.Data, &data); err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// TestImportJobLeaseNodeDies: node A dies for good while its job runs;
// node B's sweeper fails the job once its lease has lapsed, with
// lease_expired and the import.finished event; A, started again, leaves
// the job as B recorded it.
func TestImportJobLeaseNodeDies(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		ctx := context.Background()
		const lease = 30 * time.Second
		dir := filepath.Join(t.TempDir(), "jobs-a")
		clockA, clockB := newTestClock(), newTestClock()
		t0 := clockA.Now()
		clockB.Set(t0)
		dead := new(atomic.Bool)
		a := startJobNode(t, mortalStore{st, 40 * time.Millisecond, dead},
			registry.ImportJobConfig{Node: "node-a", Dir: dir, HeartbeatInterval: 5 * time.Millisecond}, registry.WithClock(clockA.Now))
		b := startJobNode(t, st, registry.ImportJobConfig{Node: "node-b", HeartbeatInterval: 5 * time.Millisecond, Lease: lease},
			registry.WithClock(clockB.Now))

		const total = 40 * registry.ImportBatchSize
		job := a.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, deviceFile(total))
		a.wait(t, "default", job.ID, "running", func(j *registry.ImportJobInfo) bool { return j.Rows > 0 })
		dead.Store(true) // node A dies: nothing it does from now on reaches the database
		a.stop()

		j := b.wait(t, "default", job.ID, "read", func(*registry.ImportJobInfo) bool { return true })
		if j.State != gatehouse.JobRunning || j.HeartbeatAt == nil || !j.HeartbeatAt.Equal(t0) {
			t.Fatalf("job of the dead node: %+v, want still running with heartbeat %v", j, t0)
		}
		rows := j.Rows

		// Within the lease, nothing happens.
		clockB.Set(t0.Add(lease - time.Second))
		if err := b.reg.SweepImportJobs(ctx); err != nil {
			t.Fatal(err)
		}
		if j, _ := b.reg.GetImportJob(ctx, b.admin, "default", job.ID); j.State != gatehouse.JobRunning {
			t.Fatalf("job within its lease: %s, want running", j.State)
		}

		// Past it, node B fails the job.
		clockB.Set(t0.Add(lease + time.Second))
		if err := b.reg.SweepImportJobs(ctx); err != nil {
			t.Fatal(err)
		}
		j, err := b.reg.GetImportJob(ctx, b.admin, "default", job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != gatehouse.JobFailed || j.Error == nil || j.Error.Code != registry.ImportJobLeaseExpired ||
			j.FinishedAt == nil || !j.FinishedAt.Equal(clockB.Now()) || j.Rows != rows || j.HeartbeatAt != nil {
			t.Fatalf("job after the lease lapsed: %+v (error %+v), want failed (%s) at %v with %d rows", j, j.Error, registry.ImportJobLeaseExpired, clockB.Now(), rows)
		}
		for _, want := range []string{`"node-a"`, t0.Format(time.RFC3339), "Upload the file again"} {
			if !strings.Contains(j.Error.Message, want) {
				t.Errorf("error message %q: want it to name %s", j.Error.Message, want)
			}
		}
		evs := finishedEvents(t, b, job.ID)
		if len(evs) != 1 || evs[0]["state"] != "failed" || evs[0]["error"] != registry.ImportJobLeaseExpired || evs[0]["rows"] != float64(rows) {
			t.Fatalf("import.finished events of the job: %v, want one, failed with %s", evs, registry.ImportJobLeaseExpired)
		}
		// Sweeping again changes nothing.
		if err := b.reg.SweepImportJobs(ctx); err != nil {
			t.Fatal(err)
		}
		if evs := finishedEvents(t, b, job.ID); len(evs) != 1 {
			t.Errorf("import.finished events after a second sweep: %d, want 1", len(evs))
		}

		// Node A comes back: its recovery finds the job finished and
		// leaves it as node B recorded it.
		a2 := startJobNode(t, st, registry.ImportJobConfig{Node: "node-a", Dir: dir}, registry.WithClock(clockA.Now))
		j2, err := a2.reg.GetImportJob(ctx, a2.admin, "default", job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j2.State != gatehouse.JobFailed || j2.Error == nil || j2.Error.Code != registry.ImportJobLeaseExpired ||
			j2.Error.Message != j.Error.Message || !j2.FinishedAt.Equal(*j.FinishedAt) || j2.Rows != rows {
			t.Errorf("job after node A restarted: %+v (error %+v), want it as node B failed it: %+v", j2, j2.Error, j)
		}
		if evs := finishedEvents(t, a2, job.ID); len(evs) != 1 {
			t.Errorf("import.finished events after node A restarted: %d, want 1", len(evs))
		}
		counts, err := a2.reg.CountDevices(ctx, a2.admin, "default", "state")
		if err != nil {
			t.Fatal(err)
		}
		if got := counts.Counts["provisioned"]; got != rows {
			t.Errorf("devices written: %d, job counted %d", got, rows)
		}
	})
}

// TestImportJobLeaseZombie: node B fails a job whose node is alive but
// whose lease has lapsed (here: node A's clock is behind); node A stops
// the job at its next batch or renewal, commits nothing more, and does
// not overwrite how the job ended.
func TestImportJobLeaseZombie(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		ctx := context.Background()
		clockA, clockB := newTestClock(), newTestClock()
		t0 := clockA.Now()
		clockB.Set(t0.Add(time.Hour))
		a := startJobNode(t, slowStore{st, 40 * time.Millisecond},
			registry.ImportJobConfig{Node: "node-a", HeartbeatInterval: 5 * time.Millisecond}, registry.WithClock(clockA.Now))
		b := startJobNode(t, st, registry.ImportJobConfig{Node: "node-b", SweepInterval: time.Hour}, registry.WithClock(clockB.Now))
		const total = 40 * registry.ImportBatchSize
		job := a.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, deviceFile(total))
		a.wait(t, "default", job.ID, "running", func(j *registry.ImportJobInfo) bool { return j.Rows > 0 })
		if err := b.reg.SweepImportJobs(ctx); err != nil {
			t.Fatal(err)
		}
		// Node A's job goroutine ends: its spool goes.
		spool := filepath.Join(a.dir, job.ID+".spool")
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(spool); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("node A still runs the job 30s after it was failed")
			}
			time.Sleep(10 * time.Millisecond)
		}
		j, err := a.reg.GetImportJob(ctx, a.admin, "default", job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != gatehouse.JobFailed || j.Error == nil || j.Error.Code != registry.ImportJobLeaseExpired || j.Rows >= total {
			t.Fatalf("job after its lease lapsed: %+v (error %+v), want failed with %s", j, j.Error, registry.ImportJobLeaseExpired)
		}
		counts, err := a.reg.CountDevices(ctx, a.admin, "default", "state")
		if err != nil {
			t.Fatal(err)
		}
		if got := counts.Counts["provisioned"]; got != j.Rows {
			t.Errorf("devices written: %d, job counted %d (a batch committed after the job failed)", got, j.Rows)
		}
		if evs := finishedEvents(t, a, job.ID); len(evs) != 1 || evs[0]["error"] != registry.ImportJobLeaseExpired {
			t.Errorf("import.finished events: %v, want one with %s", evs, registry.ImportJobLeaseExpired)
		}
	})
}

// TestImportJobLeaseRenewed: a node that runs a job keeps its lease while
// time passes well beyond the lease, and another node's sweeper leaves
// the job alone.
func TestImportJobLeaseRenewed(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		ctx := context.Background()
		const lease = 30 * time.Second
		clock := newTestClock()
		a := startJobNode(t, slowStore{st, 20 * time.Millisecond},
			registry.ImportJobConfig{Node: "node-a", HeartbeatInterval: 5 * time.Millisecond, Lease: lease}, registry.WithClock(clock.Now))
		b := startJobNode(t, st, registry.ImportJobConfig{Node: "node-b", SweepInterval: time.Hour, Lease: lease},
			registry.WithClock(clock.Now))
		job := a.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, deviceFile(200*registry.ImportBatchSize))
		a.wait(t, "default", job.ID, "running", func(j *registry.ImportJobInfo) bool { return j.State == gatehouse.JobRunning })
		// Each step moves the clock almost a lease ahead of the last
		// heartbeat, sweeps, and waits for node A to renew: over six
		// leases, neither node fails the job.
		for range 6 {
			now := clock.Now().Add(lease - time.Second)
			clock.Set(now)
			if err := b.reg.SweepImportJobs(ctx); err != nil {
				t.Fatal(err)
			}
			b.wait(t, "default", job.ID, "renewed", func(j *registry.ImportJobInfo) bool {
				if j.State != gatehouse.JobRunning {
					t.Fatalf("job of a live node: %+v (error %+v), want running", j, j.Error)
				}
				return !j.HeartbeatAt.Before(now)
			})
		}
		if _, err := a.reg.CancelImportJob(ctx, a.admin, "default", job.ID); err != nil {
			t.Fatal(err)
		}
		if j := a.wait(t, "default", job.ID, "finished", finished); j.State != gatehouse.JobCanceled {
			t.Errorf("job after cancel: %s, want canceled", j.State)
		}
	})
}

// pausableStore holds back, while paused, every Update whose context does
// not carry passKey: a node whose import job stalls (its process paused)
// while the test's own calls go through.
type pausableStore struct {
	gatehouse.Store
	paused  *atomic.Bool
	waiting *atomic.Int32 // Updates held back now
}

type passKey struct{}

func (s pausableStore) Update(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	if s.paused.Load() && ctx.Value(passKey{}) == nil {
		s.waiting.Add(1)
		for s.paused.Load() {
			time.Sleep(time.Millisecond)
		}
		s.waiting.Add(-1)
	}
	return s.Store.Update(ctx, fn)
}

// TestImportJobLeaseAfterPause: a node whose own job stalled for longer
// than the lease (the process was paused), and that sweeps before it
// renews, keeps its job: it renews its leases before it fails lapsed ones.
func TestImportJobLeaseAfterPause(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		ctx := context.WithValue(context.Background(), passKey{}, true)
		const lease = 30 * time.Second
		clock := newTestClock()
		var paused atomic.Bool
		var waiting atomic.Int32
		a := startJobNode(t, pausableStore{st, &paused, &waiting},
			// The lease is at least 3 heartbeats; none ticks in this test.
			registry.ImportJobConfig{Node: "node-a", HeartbeatInterval: lease / 3, SweepInterval: time.Hour, Lease: lease}, registry.WithClock(clock.Now))
		job := a.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, deviceFile(200*registry.ImportBatchSize))
		a.wait(t, "default", job.ID, "running", func(j *registry.ImportJobInfo) bool { return j.State == gatehouse.JobRunning })
		// Stall the job at its next batch, then let more than a lease pass.
		paused.Store(true)
		for waiting.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		clock.Set(clock.Now().Add(3 * lease))
		if err := a.reg.SweepImportJobs(ctx); err != nil {
			t.Fatal(err)
		}
		j, err := a.reg.GetImportJob(ctx, a.admin, "default", job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != gatehouse.JobRunning {
			t.Errorf("the paused node's own job after its sweep: %s (error %+v), want running", j.State, j.Error)
		}
		paused.Store(false)
		if _, err := a.reg.CancelImportJob(ctx, a.admin, "default", job.ID); err != nil {
			if j, gerr := a.reg.GetImportJob(ctx, a.admin, "default", job.ID); gerr != nil || !j.State.Finished() {
				t.Fatal(err) // refused, and not because the job had ended
			}
		}
		a.wait(t, "default", job.ID, "finished", finished)
	})
}

// noRenewStore is a node's store whose lease renewals fail (the database
// refused them for a moment); everything else goes through.
type noRenewStore struct{ gatehouse.Store }

type noRenewTx struct{ gatehouse.Tx }

func (noRenewTx) RenewImportJobs(string, []string, time.Time) ([]string, error) {
	return nil, gatehouse.Errorf(gatehouse.EUnavailable, "test: renewals fail")
}

func (s noRenewStore) Update(ctx context.Context, fn func(tx gatehouse.Tx) error) error {
	return s.Store.Update(ctx, func(tx gatehouse.Tx) error { return fn(noRenewTx{tx}) })
}

// TestImportJobLeaseRenewalFails: a node that cannot renew its own leases
// still fails another node's lapsed job (and reports the renewal's
// failure), and leaves its own job alone.
func TestImportJobLeaseRenewalFails(t *testing.T) {
	openStores(t, func(t *testing.T, st gatehouse.Store) {
		ctx := context.Background()
		const lease = 30 * time.Second
		clock := newTestClock()
		t0 := clock.Now()
		dead := new(atomic.Bool)
		a := startJobNode(t, mortalStore{st, 40 * time.Millisecond, dead},
			registry.ImportJobConfig{Node: "node-a", HeartbeatInterval: lease / 3, Lease: lease}, registry.WithClock(clock.Now))
		b := startJobNode(t, noRenewStore{slowStore{st, 20 * time.Millisecond}},
			registry.ImportJobConfig{Node: "node-b", HeartbeatInterval: lease / 3, SweepInterval: time.Hour, Lease: lease}, registry.WithClock(clock.Now))
		jobA := a.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, deviceFile(40*registry.ImportBatchSize))
		a.wait(t, "default", jobA.ID, "running", func(j *registry.ImportJobInfo) bool { return j.Rows > 0 })
		dead.Store(true)
		a.stop()
		jobB := b.create(t, "default", "", registry.ImportCreate, registry.ImportCSV, deviceFile(200*registry.ImportBatchSize))
		b.wait(t, "default", jobB.ID, "running", func(j *registry.ImportJobInfo) bool { return j.State == gatehouse.JobRunning })

		clock.Set(t0.Add(3 * lease))
		err := b.reg.SweepImportJobs(ctx)
		if err == nil || !strings.Contains(err.Error(), "renew leases") {
			t.Errorf("sweep with failing renewals: %v, want the renewal's failure reported", err)
		}
		if j, _ := b.reg.GetImportJob(ctx, b.admin, "default", jobA.ID); j.State != gatehouse.JobFailed || j.Error == nil || j.Error.Code != registry.ImportJobLeaseExpired {
			t.Errorf("the dead node's job: %s (error %+v), want failed with %s", j.State, j.Error, registry.ImportJobLeaseExpired)
		}
		if j, _ := b.reg.GetImportJob(ctx, b.admin, "default", jobB.ID); j.State.Finished() {
			t.Errorf("the node's own job, whose lease it could not renew: %s (error %+v), want it left running", j.State, j.Error)
		}
		if _, err := b.reg.CancelImportJob(ctx, b.admin, "default", jobB.ID); err != nil {
			t.Fatal(err)
		}
		b.wait(t, "default", jobB.ID, "finished", finished)
	})
}
