-- Auth configs: current state and every version. `settings` is JSON without any secret:
-- a sealed client secret appears only as its fingerprint.
CREATE TABLE auth_configs (
    workspace_id TEXT   NOT NULL,
    id           TEXT   NOT NULL,
    name         TEXT   NOT NULL,
    provider     TEXT   NOT NULL,
    auth_type    TEXT   NOT NULL,
    status       TEXT   NOT NULL,
    version      BIGINT NOT NULL,
    settings     TEXT   NOT NULL,
    created_at   TEXT   NOT NULL,
    updated_at   TEXT   NOT NULL,
    PRIMARY KEY (workspace_id, id)
);

CREATE TABLE auth_config_versions (
    workspace_id TEXT   NOT NULL,
    id           TEXT   NOT NULL,
    version      BIGINT NOT NULL,
    kind         TEXT   NOT NULL,
    name         TEXT   NOT NULL,
    settings     TEXT   NOT NULL,
    changed      TEXT   NOT NULL,
    at           TEXT   NOT NULL,
    actor_id     TEXT   NOT NULL,
    PRIMARY KEY (workspace_id, id, version)
);
