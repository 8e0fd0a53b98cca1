-- Gatehouse schema, version 7: an enrollment's counts get columns of their
-- own.
--
-- registrations (the devices the enrollment created) and uses (the times
-- its bootstrap token was used) move with every registration, which adds
-- to them with one UPDATE guarded by the etag of the settings it was
-- decided with. They are no longer part of body (which keeps zeros), nor
-- of the etag: settings and counts change independently.
ALTER TABLE enrollments ADD COLUMN registrations INTEGER NOT NULL DEFAULT 0;
ALTER TABLE enrollments ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;
UPDATE enrollments SET
	registrations = coalesce(json_extract(body, '$.registrations'), 0),
	uses = coalesce(json_extract(body, '$.attestation.uses'), 0);
