-- Gatehouse schema, version 9: two indexes leave out the rows they never
-- answer. See store/sqlite/migrations/0009 for why.
DROP INDEX devices_last_seen_idx;
CREATE INDEX devices_last_seen_idx ON devices (scope, last_seen, id) WHERE last_seen IS NOT NULL;
DROP INDEX credentials_active_expiry_idx;
CREATE INDEX credentials_active_expiry_idx ON credentials (not_after, scope) WHERE status = 'active' AND not_after IS NOT NULL;
