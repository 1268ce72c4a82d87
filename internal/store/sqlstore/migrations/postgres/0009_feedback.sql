-- 0009_feedback: prediction receipts and live metrics. receipt_keys holds
-- the keys receipts are signed with (the newest signs, retired ones verify
-- until the receipts they signed expire); feedback_receipts remembers each
-- request ID fed back until its receipt expires, so it counts once;
-- live_metrics keeps per-minute sums per endpoint, version and metric, so
-- no request is stored; live_metric_names bounds the names an endpoint
-- collects.

CREATE TABLE receipt_keys (
    id         BIGINT  NOT NULL PRIMARY KEY,
    secret     BYTEA   NOT NULL,
    created_at BIGINT  NOT NULL,
    retired_at BIGINT
);

CREATE TABLE feedback_receipts (
    endpoint   TEXT   NOT NULL,
    request_id TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (endpoint, request_id)
);
CREATE INDEX feedback_receipts_expiry ON feedback_receipts (expires_at);

CREATE TABLE live_metric_names (
    endpoint TEXT NOT NULL,
    name     TEXT NOT NULL,
    PRIMARY KEY (endpoint, name)
);

CREATE TABLE live_metrics (
    endpoint TEXT             NOT NULL,
    model    TEXT             NOT NULL,
    version  BIGINT           NOT NULL,
    metric   TEXT             NOT NULL,
    bucket   BIGINT           NOT NULL,
    n        BIGINT           NOT NULL,
    total    DOUBLE PRECISION NOT NULL,
    total_sq DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (endpoint, model, version, metric, bucket)
);
CREATE INDEX live_metrics_version ON live_metrics (model, version, bucket);
