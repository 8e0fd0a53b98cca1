-- Gatehouse schema, version 1.
--
-- Identifier columns use the "C" collation so that ORDER BY id agrees with
-- Go's byte-wise string order (keyset pagination depends on it) whatever
-- locale the database was created with.

CREATE TABLE scopes (
	id         text COLLATE "C" PRIMARY KEY,
	created_at timestamptz NOT NULL
);

-- event_seqs holds the last event number of each scope. Appending an event
-- increments the scope's row, and the row lock serialises the writers of one
-- scope until they commit: commit order is sequence order, so readers never
-- see a gap. It is apart from scopes because events may name a scope with no
-- row there (the installation-wide "*").
CREATE TABLE event_seqs (
	scope text COLLATE "C" PRIMARY KEY,
	seq   bigint NOT NULL
);

CREATE TABLE tokens (
	id         text COLLATE "C" PRIMARY KEY,
	scope      text COLLATE "C" NOT NULL,
	name       text NOT NULL,
	role       text NOT NULL,
	hash       bytea NOT NULL,
	created_at timestamptz NOT NULL,
	created_by text NOT NULL,
	revoked_at timestamptz
);
CREATE INDEX tokens_scope_idx ON tokens (scope, id);

-- config and reported are bytea, not jsonb (which reorders keys) nor text
-- (which refuses invalid UTF-8): they round-trip byte for byte. tags is
-- jsonb for reading back whole; device_tags holds the same pairs one per row
-- for the selector queries.
CREATE TABLE devices (
	scope       text COLLATE "C" NOT NULL,
	id          text COLLATE "C" NOT NULL,
	state       text COLLATE "C" NOT NULL,
	conn_status text COLLATE "C" NOT NULL,
	last_seen   timestamptz,
	tags        jsonb NOT NULL,
	config      bytea NOT NULL,
	reported    bytea NOT NULL,
	enrollment  text NOT NULL,
	created_at  timestamptz NOT NULL,
	updated_at  timestamptz NOT NULL,
	etag        text NOT NULL,
	PRIMARY KEY (scope, id)
);
CREATE INDEX devices_state_idx ON devices (scope, state, id);
CREATE INDEX devices_conn_idx ON devices (scope, conn_status, id);

CREATE TABLE device_tags (
	scope     text COLLATE "C" NOT NULL,
	device_id text COLLATE "C" NOT NULL,
	key       text COLLATE "C" NOT NULL,
	value     text COLLATE "C" NOT NULL,
	PRIMARY KEY (scope, device_id, key),
	FOREIGN KEY (scope, device_id) REFERENCES devices (scope, id) ON DELETE CASCADE
);
CREATE INDEX device_tags_kv_idx ON device_tags (scope, key, value, device_id);

CREATE TABLE device_history (
	id         bigserial PRIMARY KEY,
	scope      text COLLATE "C" NOT NULL,
	device_id  text COLLATE "C" NOT NULL,
	from_state text NOT NULL,
	to_state   text NOT NULL,
	actor      text NOT NULL,
	reason     text NOT NULL,
	time       timestamptz NOT NULL,
	FOREIGN KEY (scope, device_id) REFERENCES devices (scope, id) ON DELETE CASCADE
);
CREATE INDEX device_history_device_idx ON device_history (scope, device_id, id);

CREATE TABLE events (
	scope   text COLLATE "C" NOT NULL,
	seq     bigint NOT NULL,
	type    text NOT NULL,
	time    timestamptz NOT NULL,
	actor   text NOT NULL,
	subject text NOT NULL,
	data    bytea,
	PRIMARY KEY (scope, seq)
);

CREATE TABLE settings (
	key   text COLLATE "C" PRIMARY KEY,
	value bytea NOT NULL
);
