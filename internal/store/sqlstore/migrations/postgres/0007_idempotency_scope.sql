-- 0007_idempotency_scope: an Idempotency-Key names one request of one
-- token, so (token_id, idem_key) is unique: the same token reusing the key
-- for another method or path finds the record and is refused, instead of
-- claiming a second one. Keys reused that way before this migration keep
-- their newest record only (records live 24 hours).

DELETE FROM idempotency WHERE EXISTS (
    SELECT 1 FROM idempotency b
    WHERE b.token_id = idempotency.token_id AND b.idem_key = idempotency.idem_key
      AND (b.created_at > idempotency.created_at
        OR (b.created_at = idempotency.created_at
          AND (b.method > idempotency.method
            OR (b.method = idempotency.method AND b.path > idempotency.path))))
);

CREATE UNIQUE INDEX idempotency_token_key ON idempotency (token_id, idem_key);
