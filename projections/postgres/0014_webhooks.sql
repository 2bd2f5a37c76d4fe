-- Webhook endpoints as their events say (`webhook.*`): URL, event filters, on or off, the
-- secret's fingerprint (never the secret). Rebuilt from the log like every projection.
CREATE TABLE webhooks (
    workspace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    disabled_reason TEXT,
    secret_fingerprint TEXT NOT NULL,
    created_position BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);

-- Delivery state (not a projection: `replay` does not reset it). One cursor per endpoint:
-- the last log position delivered (or skipped as not wanted), the failed attempts at the
-- next one, when to try again, and the instance holding the endpoint's lease (a
-- conditional update claims it: one delivery per event per endpoint across instances).
CREATE TABLE webhook_cursors (
    workspace_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    attempt BIGINT NOT NULL DEFAULT 0,
    failing_since BIGINT,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    -- Moved by every rewind (replay, turned on again): a delivery begun before it cannot
    -- move the cursor after it.
    generation BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, webhook_id)
);

-- Every delivery attempt: which event, the outcome, the answer's status, how long it took.
CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    kind TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    status TEXT NOT NULL,
    response_code BIGINT,
    latency_ms BIGINT NOT NULL,
    error TEXT,
    attempted_at TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (workspace_id, webhook_id, id);
