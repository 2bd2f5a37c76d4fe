-- Projections of the event log (SQLite). Disposable: drop them and replay the log.
-- Times are RFC 3339 UTC text; positions are global log positions.

CREATE TABLE projection_offsets (
    name     TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
INSERT INTO projection_offsets (name, position) VALUES ('state', 0);

-- One row per event: the seed of the compliance audit views.
CREATE TABLE audit_events (
    position          BIGINT PRIMARY KEY,
    event_id          TEXT   NOT NULL UNIQUE,
    workspace_id      TEXT   NOT NULL,
    aggregate_type    TEXT   NOT NULL,
    aggregate_id      TEXT   NOT NULL,
    aggregate_version BIGINT NOT NULL,
    kind              TEXT   NOT NULL,
    actor_type        TEXT   NOT NULL,
    actor_id          TEXT   NOT NULL,
    occurred_at       TEXT   NOT NULL,
    key_id            TEXT   NOT NULL
);
CREATE INDEX audit_events_by_workspace ON audit_events (workspace_id, position);

CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT   NOT NULL,
    created_at TEXT   NOT NULL,
    version    BIGINT NOT NULL
);

CREATE TABLE api_keys (
    workspace_id TEXT   NOT NULL,
    id           TEXT   NOT NULL,
    name         TEXT   NOT NULL,
    role         TEXT   NOT NULL,
    key_prefix   TEXT   NOT NULL,
    key_hash     TEXT   NOT NULL UNIQUE,
    created_at   TEXT   NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT,
    version      BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
