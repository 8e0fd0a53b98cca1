-- Gatehouse schema, version 8: a lease on each unfinished import job.
-- See store/sqlite/migrations/0008 for the meaning of heartbeat_at.
ALTER TABLE import_jobs ADD COLUMN heartbeat_at timestamptz;

UPDATE import_jobs SET heartbeat_at = CASE
	WHEN state IN ('queued', 'running') THEN now()
	ELSE coalesce(finished_at, started_at, created_at)
END;

ALTER TABLE import_jobs ALTER COLUMN heartbeat_at SET NOT NULL;

CREATE INDEX import_jobs_lease_idx ON import_jobs (heartbeat_at) WHERE state IN ('queued', 'running');
