-- 0005_endpoint_timeout: an endpoint's upstream timeout (Go duration text;
-- '' = the gateway's default, 30s).

ALTER TABLE endpoints ADD COLUMN timeout TEXT NOT NULL DEFAULT '';
