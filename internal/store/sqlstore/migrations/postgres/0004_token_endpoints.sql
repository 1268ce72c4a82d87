-- 0004_token_endpoints: a serve token may be limited to named endpoints
-- (a JSON array, like stages); '[]' is every endpoint, which is what every
-- token made before this migration may call.

ALTER TABLE tokens ADD COLUMN endpoints TEXT NOT NULL DEFAULT '[]';
