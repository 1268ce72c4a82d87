-- 0002_governance: an endpoint may declare the stage it serves, and a stage
-- remembers the signature of the last version it held, so
-- require_signature_match still compares after an unassign (even when that
-- version was deleted since).

ALTER TABLE endpoints ADD COLUMN stage TEXT NOT NULL DEFAULT '';

-- JSON of the signature of the version named by previous_version while the
-- stage is unassigned ('null' for a version without one); NULL when unknown
-- (unassigned before this migration) or while the stage is assigned.
ALTER TABLE stage_assignments ADD COLUMN last_signature TEXT;
