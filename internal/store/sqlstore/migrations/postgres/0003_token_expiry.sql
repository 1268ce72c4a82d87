-- 0003_token_expiry: a token may expire. An expired token is refused like a
-- revoked one; NULL never expires (every token made before this migration).
-- Microseconds since the epoch, like the other time columns.

ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
