-- 0008_rollouts: progressive delivery. An endpoint keeps its rollout
-- configuration (rollout, JSON) and where its latest rollout stands
-- (rollout_status, JSON; rollout_state and rollout_seq copied out of it
-- so the driver finds active rollouts and the gateway's poll sees a step
-- without decoding JSON). rollouts hands out rollout ids; gateways flush
-- what they observed per step into rollout_observations; leases elect the
-- one process that drives rollouts.

ALTER TABLE endpoints ADD COLUMN rollout TEXT;
ALTER TABLE endpoints ADD COLUMN rollout_status TEXT;
ALTER TABLE endpoints ADD COLUMN rollout_state TEXT NOT NULL DEFAULT '';
ALTER TABLE endpoints ADD COLUMN rollout_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX endpoints_rollout_state ON endpoints (rollout_state);

CREATE TABLE rollouts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint   TEXT    NOT NULL,
    started_at BIGINT  NOT NULL
);

CREATE TABLE rollout_observations (
    endpoint   TEXT   NOT NULL,
    rollout_id BIGINT NOT NULL,
    step       INTEGER NOT NULL,
    route      TEXT   NOT NULL,
    process    TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    requests   BIGINT NOT NULL,
    errors     BIGINT NOT NULL,
    latency    TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (endpoint, rollout_id, step, route, process)
);

CREATE TABLE leases (
    name       TEXT   NOT NULL PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
