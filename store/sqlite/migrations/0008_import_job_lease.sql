-- Gatehouse schema, version 8: a lease on each unfinished import job.
--
-- heartbeat_at is when the job's node last renewed its lease (at creation,
-- every few seconds while it runs, and with every batch it commits). Any
-- node fails an unfinished job whose heartbeat is older than the lease: its
-- node stopped for good, and only that node could read the job's spool.
--
-- Existing rows: a finished job's heartbeat is the last time it changed; an
-- unfinished one starts a full lease now, so that a node still running it
-- keeps it (and a node that restarts fails its own jobs as before).
ALTER TABLE import_jobs ADD COLUMN heartbeat_at INTEGER NOT NULL DEFAULT 0;

UPDATE import_jobs SET heartbeat_at = CASE
	WHEN state IN ('queued', 'running') THEN CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
	ELSE coalesce(finished_at, started_at, created_at)
END;

-- The sweeper's question (unfinished jobs with an old heartbeat) reads only
-- the unfinished jobs. The query names the states as literals, which SQLite
-- needs to use a partial index.
CREATE INDEX import_jobs_lease ON import_jobs (heartbeat_at) WHERE state IN ('queued', 'running');
