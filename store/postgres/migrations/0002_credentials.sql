-- Gatehouse schema, version 2: the scopes' issuing CAs, their CRLs, and
-- device credentials.
--
-- None of the new tables has a foreign key to devices: a credential outlives
-- its device, because a revoked certificate must stay on the CRL until it
-- expires. Byte columns hold exactly what the caller gave; an empty value is
-- read back as nil.

-- policy is gatehouse.ScopePolicy as JSON; '{}' is the zero policy (every
-- field at its default).
ALTER TABLE scopes ADD COLUMN policy jsonb NOT NULL DEFAULT '{}';

-- chain is the CA's chain, issuer first and root last, as an array: one
-- row, so replacing a CA never leaves a stale chain behind.
CREATE TABLE scope_cas (
	scope      text COLLATE "C" PRIMARY KEY,
	cert_der   bytea NOT NULL,
	chain      bytea[] NOT NULL,
	sealed_key bytea NOT NULL,
	imported   boolean NOT NULL,
	created_at timestamptz NOT NULL
);

CREATE TABLE crls (
	scope       text COLLATE "C" PRIMARY KEY,
	number      bigint NOT NULL,
	der         bytea NOT NULL,
	this_update timestamptz NOT NULL,
	next_update timestamptz NOT NULL
);

-- The indexes serve the list queries: a device's credentials in ID order,
-- the credentials expiring before a time, and one status and kind (the
-- revoked certificates for the CRL) in ID order.
CREATE TABLE credentials (
	scope              text COLLATE "C" NOT NULL,
	id                 text COLLATE "C" NOT NULL,
	device_id          text COLLATE "C" NOT NULL,
	kind               text COLLATE "C" NOT NULL,
	status             text COLLATE "C" NOT NULL,
	serial             text NOT NULL,
	thumbprint         text NOT NULL,
	slot               text NOT NULL,
	not_before         timestamptz,
	not_after          timestamptz,
	created_at         timestamptz NOT NULL,
	retire_at          timestamptz,
	revoked_at         timestamptz,
	revocation_reason  text NOT NULL,
	expiry_notified_at timestamptz,
	cert_der           bytea,
	secret             bytea,
	PRIMARY KEY (scope, id)
);
CREATE INDEX credentials_device_idx ON credentials (scope, device_id, id);
CREATE INDEX credentials_not_after_idx ON credentials (scope, not_after) WHERE not_after IS NOT NULL;
CREATE INDEX credentials_status_kind_idx ON credentials (scope, status, kind, id);
