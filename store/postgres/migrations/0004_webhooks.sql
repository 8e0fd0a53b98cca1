-- Gatehouse schema, version 4: event delivery webhooks, their dead letters,
-- and indexes for the audit query. See store/sqlite/migrations/0004 for
-- the meaning of the columns.
CREATE TABLE webhooks (
	scope         text COLLATE "C" NOT NULL REFERENCES scopes (id),
	id            text COLLATE "C" NOT NULL,
	url           text NOT NULL,
	events        jsonb NOT NULL,
	sealed_secret bytea NOT NULL,
	created_at    timestamptz NOT NULL,
	created_by    text NOT NULL,
	delivered_seq bigint NOT NULL,
	failures      integer NOT NULL,
	next_attempt  timestamptz NOT NULL,
	last_error    text NOT NULL,
	generation    bigint NOT NULL,
	lease_owner   text NOT NULL,
	lease_until   timestamptz NOT NULL,
	PRIMARY KEY (scope, id)
);

CREATE TABLE webhook_dead_letters (
	scope      text COLLATE "C" NOT NULL,
	webhook_id text COLLATE "C" NOT NULL,
	seq        bigint NOT NULL,
	type       text NOT NULL,
	attempts   integer NOT NULL,
	last_error text NOT NULL,
	time       timestamptz NOT NULL,
	PRIMARY KEY (scope, webhook_id, seq),
	FOREIGN KEY (scope, webhook_id) REFERENCES webhooks (scope, id) ON DELETE CASCADE
);

CREATE INDEX events_actor_idx ON events (scope, actor, seq);
CREATE INDEX events_subject_idx ON events (scope, subject, seq);
CREATE INDEX events_time_idx ON events (scope, time, seq);

CREATE INDEX devices_last_seen_idx ON devices (scope, last_seen, id);
CREATE INDEX devices_enrollment_idx ON devices (scope, enrollment, id);
