-- Indexes for filters the plan tests found answered by a walk
-- (store/sqlite/plan_filter_test.go). Additive: indexes only.

-- The audit query by event type, exact or by prefix ("device.*": a range).
CREATE INDEX events_type ON events (scope, type, seq);

-- The expiring-credential count over every scope (metrics): a range of
-- not_after that holds the scope, instead of a walk of every scope's
-- credentials_not_after.
CREATE INDEX credentials_active_expiry ON credentials (not_after, scope) WHERE status = 'active';
