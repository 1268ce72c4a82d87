-- 0006_flagged_by: who set a flagged version's flag reason (the token
-- name), so a stage-restricted token can be kept from changing a reason
-- another token set. '' on versions flagged before this column existed:
-- nobody's, so only an unrestricted token may change it.

ALTER TABLE model_versions ADD COLUMN flagged_by TEXT NOT NULL DEFAULT '';
