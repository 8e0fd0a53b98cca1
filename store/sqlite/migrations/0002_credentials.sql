-- Gatehouse schema, version 2: the scopes' issuing CAs, their CRLs, and
-- device credentials.
--
-- None of the new tables has a foreign key to devices: a credential outlives
-- its device, because a revoked certificate must stay on the CRL until it
-- expires. Byte columns hold exactly what the caller gave; an empty value is
-- read back as nil.

-- policy is the JSON of gatehouse.ScopePolicy; '{}' is the zero policy
-- (every field at its default).
ALTER TABLE scopes ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';

-- chain is the CA's chain (issuer first, root last) as one BLOB: each
-- certificate preceded by its length as a uvarint. One row, so a replaced
-- CA never leaves a stale chain behind.
CREATE TABLE scope_cas (
	scope      TEXT    NOT NULL PRIMARY KEY,
	cert_der   BLOB    NOT NULL,
	chain      BLOB    NOT NULL,
	sealed_key BLOB    NOT NULL,
	imported   INTEGER NOT NULL,
	created_at INTEGER NOT NULL
);

CREATE TABLE crls (
	scope       TEXT    NOT NULL PRIMARY KEY,
	number      INTEGER NOT NULL,
	der         BLOB    NOT NULL,
	this_update INTEGER NOT NULL,
	next_update INTEGER NOT NULL
);

-- A rowid table, not WITHOUT ROWID: rows carry a certificate (about 1 KiB),
-- too wide to keep in the primary key's b-tree. The indexes serve the
-- list queries (see credentialQuery): a device's credentials in ID order,
-- the credentials expiring before a time, and one status and kind (the
-- revoked certificates for the CRL) in ID order.
CREATE TABLE credentials (
	scope              TEXT    NOT NULL,
	id                 TEXT    NOT NULL,
	device_id          TEXT    NOT NULL,
	kind               TEXT    NOT NULL,
	status             TEXT    NOT NULL,
	serial             TEXT    NOT NULL,
	thumbprint         TEXT    NOT NULL,
	slot               TEXT    NOT NULL,
	not_before         INTEGER,
	not_after          INTEGER,
	created_at         INTEGER NOT NULL,
	retire_at          INTEGER,
	revoked_at         INTEGER,
	revocation_reason  TEXT    NOT NULL,
	expiry_notified_at INTEGER,
	cert_der           BLOB,
	secret             BLOB,
	PRIMARY KEY (scope, id)
);
CREATE INDEX credentials_device ON credentials (scope, device_id, id);
CREATE INDEX credentials_not_after ON credentials (scope, not_after) WHERE not_after IS NOT NULL;
CREATE INDEX credentials_status_kind ON credentials (scope, status, kind, id);
