-- Gatehouse schema, version 6: import jobs and the records each refused.
-- See store/sqlite/migrations/0006 for the meaning of the columns.
CREATE TABLE import_jobs (
	scope            text COLLATE "C" NOT NULL REFERENCES scopes (id),
	id               text COLLATE "C" NOT NULL,
	kind             text NOT NULL,
	mode             text NOT NULL,
	format           text NOT NULL,
	state            text NOT NULL,
	node             text NOT NULL,
	created_by       text NOT NULL,
	rows_done        bigint NOT NULL,
	ok               bigint NOT NULL,
	unchanged        bigint NOT NULL,
	rejected         bigint NOT NULL,
	cancel_requested boolean NOT NULL,
	error_code       text NOT NULL,
	error_message    text NOT NULL,
	created_at       timestamptz NOT NULL,
	started_at       timestamptz,
	finished_at      timestamptz,
	expires_at       timestamptz NOT NULL,
	PRIMARY KEY (scope, id)
);

CREATE INDEX import_jobs_expiry_idx ON import_jobs (expires_at);
CREATE INDEX import_jobs_node_idx ON import_jobs (node, state);

CREATE TABLE import_job_rejects (
	scope   text COLLATE "C" NOT NULL,
	job_id  text COLLATE "C" NOT NULL,
	row     bigint NOT NULL,
	id      text NOT NULL,
	code    text NOT NULL,
	message text NOT NULL,
	PRIMARY KEY (scope, job_id, row),
	FOREIGN KEY (scope, job_id) REFERENCES import_jobs (scope, id) ON DELETE CASCADE
);
