-- Indexes for filters the plan tests found without an index path
-- (store/postgres/explain_filter_test.go). Additive: indexes only.

-- The audit query by event type, exact or by prefix ("device.*"). The
-- column's collation may be a locale's, in which a byte range is not a
-- prefix; the query compares in "C", so the index is built in "C".
CREATE INDEX events_type_idx ON events (scope, (type COLLATE "C"), seq);

-- The expiring-credential count over every scope (metrics): a range of
-- not_after that holds the scope (an index-only scan).
CREATE INDEX credentials_active_expiry_idx ON credentials (not_after, scope) WHERE status = 'active';
