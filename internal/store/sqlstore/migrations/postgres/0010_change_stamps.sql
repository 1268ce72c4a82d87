-- 0010_change_stamps: one counter per model, incremented in every write
-- transaction whose audit event names the model (every write that can
-- change a model, version or stage answer). Replicas poll the sum of the
-- counters to know when their cached answers may be stale: it grows with
-- every such commit whatever order transactions commit in (each row only
-- grows, under its row lock, and rows are never deleted: a model's row
-- outlives the model, like version_counters), and it does not move with
-- writes that change no answer (the rollout lease, rollout observations,
-- idempotency records, token use), which pg_current_snapshot() and
-- MAX(events.id) cannot tell apart or order.
CREATE TABLE change_stamps (
    model   TEXT   NOT NULL PRIMARY KEY,
    changes BIGINT NOT NULL
);
