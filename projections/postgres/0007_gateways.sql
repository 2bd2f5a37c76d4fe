-- Gateways: named least-privilege tool bundles, and the agent keys bound to them.
CREATE TABLE gateways (
    workspace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    servers TEXT NOT NULL,
    agent_key_ids TEXT NOT NULL,
    status TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE TABLE gateway_keys (
    workspace_id TEXT NOT NULL,
    gateway_id TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    PRIMARY KEY (workspace_id, gateway_id, api_key_id)
);
CREATE INDEX gateway_keys_by_key ON gateway_keys (workspace_id, api_key_id);
