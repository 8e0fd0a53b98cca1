-- Gatehouse schema, version 9: two indexes leave out the rows they never
-- answer, so that registering a device writes two index entries fewer.
--
-- devices_last_seen answers last-seen windows, which a device never seen
-- (last_seen NULL) never falls in: it gets its entry when it first
-- connects. credentials_active_expiry answers expiry questions, which a
-- symmetric-key or token credential (no not_after) never has. Every query
-- these indexes serve compares the column, which SQLite takes as proof of
-- IS NOT NULL.
DROP INDEX devices_last_seen;
CREATE INDEX devices_last_seen ON devices (scope, last_seen, id) WHERE last_seen IS NOT NULL;
DROP INDEX credentials_active_expiry;
CREATE INDEX credentials_active_expiry ON credentials (not_after, scope) WHERE status = 'active' AND not_after IS NOT NULL;
