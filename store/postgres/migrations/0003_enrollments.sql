-- Gatehouse schema, version 3: enrollments and registration records.
--
-- body is the JSON of gatehouse.Enrollment as encoding/json writes it,
-- without InitialConfig. It is json, not jsonb: json keeps the text as
-- written and accepts \u0000, which jsonb refuses. InitialConfig (any bytes,
-- kept byte for byte), the attestation's token hash and the sealed secrets
-- (both json:"-") have columns of their own; an empty value is NULL and
-- reads back as nil. type, attestation_type, enabled, etag and the times
-- repeat fields of body for the index and for people reading the table;
-- body is what is read back.
--
-- Neither table has a foreign key: registration records outlive their
-- enrollment, and the callers check the scope.
CREATE TABLE enrollments (
	scope            text COLLATE "C" NOT NULL,
	id               text COLLATE "C" NOT NULL,
	type             text COLLATE "C" NOT NULL,
	attestation_type text COLLATE "C" NOT NULL,
	enabled          boolean NOT NULL,
	body             json NOT NULL,
	initial_config   bytea,
	token_hash       bytea,
	sealed_secrets   bytea,
	etag             text NOT NULL,
	created_at       timestamptz NOT NULL,
	updated_at       timestamptz NOT NULL,
	PRIMARY KEY (scope, id)
);
-- One type and attestation type (the symmetric-key groups a registration
-- tries) in ID order.
CREATE INDEX enrollments_type_attestation_idx ON enrollments (scope, type, attestation_type, id);

CREATE TABLE registrations (
	scope           text COLLATE "C" NOT NULL,
	registration_id text COLLATE "C" NOT NULL,
	enrollment_id   text COLLATE "C" NOT NULL,
	device_id       text COLLATE "C" NOT NULL,
	operation_id    text NOT NULL,
	status          text NOT NULL,
	substatus       text NOT NULL,
	assigned_hub    text NOT NULL,
	error_code      text NOT NULL,
	error_message   text NOT NULL,
	attempts        bigint NOT NULL,
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	etag            text NOT NULL,
	PRIMARY KEY (scope, registration_id)
);
