-- Gatehouse schema, version 3: enrollments and registration records.
--
-- body is the JSON of gatehouse.Enrollment as encoding/json writes it,
-- without InitialConfig. InitialConfig (any bytes, kept byte for byte), the
-- attestation's token hash and the sealed secrets (both json:"-") have
-- columns of their own; an empty value is NULL and reads back as nil. type,
-- attestation_type, enabled, etag and the times repeat fields of body for
-- the index and for people reading the table; body is what is read back.
--
-- Neither table has a foreign key: registration records outlive their
-- enrollment, and the callers check the scope.
CREATE TABLE enrollments (
	scope            TEXT    NOT NULL,
	id               TEXT    NOT NULL,
	type             TEXT    NOT NULL,
	attestation_type TEXT    NOT NULL,
	enabled          INTEGER NOT NULL,
	body             TEXT    NOT NULL,
	initial_config   BLOB,
	token_hash       BLOB,
	sealed_secrets   BLOB,
	etag             TEXT    NOT NULL,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL,
	PRIMARY KEY (scope, id)
);
-- One type and attestation type (the symmetric-key groups a registration
-- tries) in ID order.
CREATE INDEX enrollments_type_attestation ON enrollments (scope, type, attestation_type, id);

-- Small rows looked up by their key only: WITHOUT ROWID keeps them in the
-- primary key's b-tree.
CREATE TABLE registrations (
	scope           TEXT    NOT NULL,
	registration_id TEXT    NOT NULL,
	enrollment_id   TEXT    NOT NULL,
	device_id       TEXT    NOT NULL,
	operation_id    TEXT    NOT NULL,
	status          TEXT    NOT NULL,
	substatus       TEXT    NOT NULL,
	assigned_hub    TEXT    NOT NULL,
	error_code      TEXT    NOT NULL,
	error_message   TEXT    NOT NULL,
	attempts        INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	etag            TEXT    NOT NULL,
	PRIMARY KEY (scope, registration_id)
) WITHOUT ROWID;
