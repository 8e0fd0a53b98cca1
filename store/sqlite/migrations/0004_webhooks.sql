-- Gatehouse schema, version 4: event delivery webhooks, their dead letters,
-- and indexes for the audit query.
--
-- A webhook row is also its delivery cursor (delivered_seq) and its lease
-- (lease_owner until lease_until): the events table is the outbox, and a
-- webhook's row says how far it has been delivered. events is a list of
-- type filters as a JSON array.
CREATE TABLE webhooks (
	scope         TEXT    NOT NULL REFERENCES scopes (id),
	id            TEXT    NOT NULL,
	url           TEXT    NOT NULL,
	events        TEXT    NOT NULL,
	sealed_secret BLOB    NOT NULL,
	created_at    INTEGER NOT NULL,
	created_by    TEXT    NOT NULL,
	delivered_seq INTEGER NOT NULL,
	failures      INTEGER NOT NULL,
	next_attempt  INTEGER NOT NULL,
	last_error    TEXT    NOT NULL,
	generation    INTEGER NOT NULL,
	lease_owner   TEXT    NOT NULL,
	lease_until   INTEGER NOT NULL,
	PRIMARY KEY (scope, id)
);

CREATE TABLE webhook_dead_letters (
	scope      TEXT    NOT NULL,
	webhook_id TEXT    NOT NULL,
	seq        INTEGER NOT NULL,
	type       TEXT    NOT NULL,
	attempts   INTEGER NOT NULL,
	last_error TEXT    NOT NULL,
	time       INTEGER NOT NULL,
	PRIMARY KEY (scope, webhook_id, seq),
	FOREIGN KEY (scope, webhook_id) REFERENCES webhooks (scope, id) ON DELETE CASCADE
) WITHOUT ROWID;

-- Audit queries: who did what (actor), to what (subject), in seq order.
CREATE INDEX events_actor ON events (scope, actor, seq);
CREATE INDEX events_subject ON events (scope, subject, seq);
CREATE INDEX events_time ON events (scope, time, seq);

-- Dashboards and fleet queries: last seen and enrollment.
CREATE INDEX devices_last_seen ON devices (scope, last_seen, id);
CREATE INDEX devices_enrollment ON devices (scope, enrollment, id);
