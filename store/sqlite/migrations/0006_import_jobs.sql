-- Gatehouse schema, version 6: import jobs (bulk imports run in the
-- background) and the records each refused (the first 10,000).
--
-- A job's counts are written in the same transaction as the batch they
-- describe. node names the node that holds the job's encrypted spool.
CREATE TABLE import_jobs (
	scope            TEXT    NOT NULL REFERENCES scopes (id),
	id               TEXT    NOT NULL,
	kind             TEXT    NOT NULL,
	mode             TEXT    NOT NULL,
	format           TEXT    NOT NULL,
	state            TEXT    NOT NULL,
	node             TEXT    NOT NULL,
	created_by       TEXT    NOT NULL,
	rows_done        INTEGER NOT NULL,
	ok               INTEGER NOT NULL,
	unchanged        INTEGER NOT NULL,
	rejected         INTEGER NOT NULL,
	cancel_requested INTEGER NOT NULL,
	error_code       TEXT    NOT NULL,
	error_message    TEXT    NOT NULL,
	created_at       INTEGER NOT NULL,
	started_at       INTEGER,
	finished_at      INTEGER,
	expires_at       INTEGER NOT NULL,
	PRIMARY KEY (scope, id)
);

CREATE INDEX import_jobs_expiry ON import_jobs (expires_at);
CREATE INDEX import_jobs_node ON import_jobs (node, state);

CREATE TABLE import_job_rejects (
	scope   TEXT    NOT NULL,
	job_id  TEXT    NOT NULL,
	row     INTEGER NOT NULL,
	id      TEXT    NOT NULL,
	code    TEXT    NOT NULL,
	message TEXT    NOT NULL,
	PRIMARY KEY (scope, job_id, row),
	FOREIGN KEY (scope, job_id) REFERENCES import_jobs (scope, id) ON DELETE CASCADE
) WITHOUT ROWID;
