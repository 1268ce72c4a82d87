-- 0001_init: the registry's first schema (SQLite).
--
-- Conventions shared with migrations/postgres/0001_init.sql, so both dialects
-- answer alike:
--   * timestamps are Unix microseconds (UTC) in BIGINT columns;
--   * maps and structs of the wire types are JSON text;
--   * metrics and version tags are also kept in side tables so lists can be
--     filtered and ordered in SQL;
--   * no ON DELETE CASCADE between domain objects: the store deletes
--     explicitly and foreign keys catch what it forgot (only derived side
--     tables cascade).

CREATE TABLE models (
    name           TEXT    NOT NULL PRIMARY KEY,
    description    TEXT    NOT NULL,
    owner          TEXT    NOT NULL,
    tags           TEXT    NOT NULL,
    stage_policies TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    revision       BIGINT  NOT NULL
);

-- One row per model name ever used. It outlives the model so version
-- numbers are never reused, even after a force delete and re-create.
CREATE TABLE version_counters (
    model        TEXT   NOT NULL PRIMARY KEY,
    last_version BIGINT NOT NULL
);

CREATE TABLE model_versions (
    model       TEXT    NOT NULL REFERENCES models (name),
    version     BIGINT  NOT NULL,
    source      TEXT    NOT NULL,
    checksum    TEXT    NOT NULL,
    format      TEXT    NOT NULL,
    parameters  TEXT    NOT NULL,
    metrics     TEXT    NOT NULL,
    lineage     TEXT,
    signature   TEXT,
    description TEXT    NOT NULL,
    tags        TEXT    NOT NULL,
    flagged     BOOLEAN NOT NULL,
    flag_reason TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    revision    BIGINT  NOT NULL,
    PRIMARY KEY (model, version)
);
CREATE UNIQUE INDEX model_versions_checksum ON model_versions (model, checksum);

CREATE TABLE version_metrics (
    model   TEXT   NOT NULL,
    version BIGINT NOT NULL,
    name    TEXT   NOT NULL,
    value   REAL   NOT NULL,
    PRIMARY KEY (model, version, name),
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version) ON DELETE CASCADE
);
CREATE INDEX version_metrics_order ON version_metrics (model, name, value, version);

CREATE TABLE version_tags (
    model     TEXT   NOT NULL,
    version   BIGINT NOT NULL,
    tag_key   TEXT   NOT NULL,
    tag_value TEXT   NOT NULL,
    PRIMARY KEY (model, version, tag_key),
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version) ON DELETE CASCADE
);
CREATE INDEX version_tags_key ON version_tags (model, tag_key, tag_value);

-- One row per (model, stage) ever assigned. version is NULL while the stage
-- is unassigned; the row stays so its revision keeps counting.
CREATE TABLE stage_assignments (
    model            TEXT   NOT NULL REFERENCES models (name),
    stage            TEXT   NOT NULL,
    version          BIGINT,
    previous_version BIGINT NOT NULL,
    assigned_at      BIGINT NOT NULL,
    assigned_by      TEXT   NOT NULL,
    reason           TEXT   NOT NULL,
    revision         BIGINT NOT NULL,
    PRIMARY KEY (model, stage),
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
);
CREATE INDEX stage_assignments_version ON stage_assignments (model, version);

-- History may name versions that were deleted later, so no foreign key.
CREATE TABLE stage_history (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    model            TEXT    NOT NULL,
    stage            TEXT    NOT NULL,
    action           TEXT    NOT NULL,
    version          BIGINT  NOT NULL,
    previous_version BIGINT  NOT NULL,
    assigned_at      BIGINT  NOT NULL,
    assigned_by      TEXT    NOT NULL,
    reason           TEXT    NOT NULL
);
CREATE INDEX stage_history_stage ON stage_history (model, stage, id);

CREATE TABLE endpoints (
    name           TEXT   NOT NULL PRIMARY KEY,
    model          TEXT   NOT NULL REFERENCES models (name),
    routes         TEXT   NOT NULL,
    sticky_header  TEXT   NOT NULL,
    guard          TEXT,
    status         TEXT   NOT NULL,
    status_message TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    revision       BIGINT NOT NULL
);
CREATE INDEX endpoints_model ON endpoints (model);

-- Which versions endpoints route to (endpoints.routes is the answer; this
-- table lets the database refuse to delete a routed version).
CREATE TABLE endpoint_routes (
    endpoint TEXT   NOT NULL REFERENCES endpoints (name) ON DELETE CASCADE,
    route    TEXT   NOT NULL,
    model    TEXT   NOT NULL,
    version  BIGINT NOT NULL,
    PRIMARY KEY (endpoint, route),
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
);
CREATE INDEX endpoint_routes_version ON endpoint_routes (model, version);

CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           BIGINT  NOT NULL,
    actor        TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    subject_type TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    model        TEXT    NOT NULL,
    endpoint     TEXT    NOT NULL,
    before_json  TEXT,
    after_json   TEXT,
    request_id   TEXT    NOT NULL
);
CREATE INDEX events_model ON events (model, id);
CREATE INDEX events_endpoint ON events (endpoint, id);
CREATE INDEX events_at ON events (at);

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    scope        TEXT    NOT NULL,
    stages       TEXT    NOT NULL,
    hash         BLOB    NOT NULL UNIQUE,
    created_at   BIGINT  NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE idempotency (
    token_id     BIGINT  NOT NULL,
    idem_key     TEXT    NOT NULL,
    method       TEXT    NOT NULL,
    path         TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    completed    BOOLEAN NOT NULL,
    status_code  INTEGER NOT NULL,
    headers      TEXT    NOT NULL,
    body         BLOB,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (token_id, idem_key, method, path)
);
CREATE INDEX idempotency_created ON idempotency (created_at);
