-- Gatehouse schema, version 1.
--
-- Times are INTEGER unix microseconds, UTC. JSON documents (config,
-- reported, event data) are BLOBs holding exactly the bytes the caller gave:
-- the store never re-encodes them. Tags are kept twice: as a JSON object on
-- the device row, which is what reads return, and one row per tag in
-- device_tags, which is what selectors filter on through an index.

CREATE TABLE scopes (
	id         TEXT    NOT NULL PRIMARY KEY,
	created_at INTEGER NOT NULL
);

CREATE TABLE tokens (
	id         TEXT    NOT NULL PRIMARY KEY,
	scope      TEXT    NOT NULL, -- no foreign key: "*" names the installation
	name       TEXT    NOT NULL,
	role       TEXT    NOT NULL,
	hash       BLOB    NOT NULL,
	created_at INTEGER NOT NULL,
	created_by TEXT    NOT NULL,
	revoked_at INTEGER
);
CREATE INDEX tokens_scope ON tokens (scope, id);

CREATE TABLE devices (
	scope       TEXT    NOT NULL REFERENCES scopes (id),
	id          TEXT    NOT NULL,
	state       TEXT    NOT NULL,
	conn_status TEXT    NOT NULL,
	last_seen   INTEGER,
	tags        TEXT    NOT NULL,
	config      BLOB    NOT NULL,
	reported    BLOB    NOT NULL,
	enrollment  TEXT    NOT NULL,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	etag        TEXT    NOT NULL,
	PRIMARY KEY (scope, id)
);
CREATE INDEX devices_state ON devices (scope, state, id);
CREATE INDEX devices_conn ON devices (scope, conn_status, id);

CREATE TABLE device_tags (
	scope     TEXT NOT NULL,
	device_id TEXT NOT NULL,
	key       TEXT NOT NULL,
	value     TEXT NOT NULL,
	PRIMARY KEY (scope, device_id, key),
	FOREIGN KEY (scope, device_id) REFERENCES devices (scope, id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX device_tags_kv ON device_tags (scope, key, value, device_id);

-- seq orders a device's history by insertion; it only grows while the
-- device exists, so "oldest first" is ORDER BY seq.
CREATE TABLE device_history (
	seq        INTEGER NOT NULL PRIMARY KEY,
	scope      TEXT    NOT NULL,
	device_id  TEXT    NOT NULL,
	from_state TEXT    NOT NULL,
	to_state   TEXT    NOT NULL,
	actor      TEXT    NOT NULL,
	reason     TEXT    NOT NULL,
	time       INTEGER NOT NULL,
	FOREIGN KEY (scope, device_id) REFERENCES devices (scope, id) ON DELETE CASCADE
);
CREATE INDEX device_history_device ON device_history (scope, device_id, seq);

-- The next event number per scope. A counter row, not MAX(seq)+1, so a
-- rolled-back append leaves no gap and needs no scan; not a column of
-- scopes, so the installation-wide scope "*" has a log too.
CREATE TABLE event_seqs (
	scope TEXT    NOT NULL PRIMARY KEY,
	seq   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE events (
	scope   TEXT    NOT NULL,
	seq     INTEGER NOT NULL,
	type    TEXT    NOT NULL,
	time    INTEGER NOT NULL,
	actor   TEXT    NOT NULL,
	subject TEXT    NOT NULL,
	data    BLOB,
	PRIMARY KEY (scope, seq)
) WITHOUT ROWID;

CREATE TABLE settings (
	key   TEXT NOT NULL PRIMARY KEY,
	value BLOB NOT NULL
);
