-- 0011_feedback_trust: live_metrics_trusted keeps the same sums as
-- live_metrics for the feedback of write and admin tokens only (an
-- operator's ground-truth pipeline). Automatic actions and stage policies
-- judge these; feedback of serve tokens (the application's own clients)
-- stays in live_metrics, shown but never acted on.

CREATE TABLE live_metrics_trusted (
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
CREATE INDEX live_metrics_trusted_version ON live_metrics_trusted (model, version, bucket);
