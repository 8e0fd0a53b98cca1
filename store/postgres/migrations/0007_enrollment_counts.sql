-- Gatehouse schema, version 7: an enrollment's counts get columns of their
-- own. See store/sqlite/migrations/0007 for why.
ALTER TABLE enrollments ADD COLUMN registrations integer NOT NULL DEFAULT 0;
ALTER TABLE enrollments ADD COLUMN uses integer NOT NULL DEFAULT 0;
UPDATE enrollments SET
	registrations = coalesce((body ->> 'registrations')::integer, 0),
	uses = coalesce((body -> 'attestation' ->> 'uses')::integer, 0);
