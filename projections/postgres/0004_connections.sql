-- Connections: one end user's account from one auth config. No token or credential here:
-- only scopes, the access token's expiry and whether a refresh token is held.
-- `expires_at_unix` (seconds) orders and compares expiries; RFC 3339 text with optional
-- fractions does not compare correctly as text.
CREATE TABLE connections (
    workspace_id      TEXT    NOT NULL,
    id                TEXT    NOT NULL,
    auth_config_id    TEXT    NOT NULL,
    user_id           TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    scopes            TEXT    NOT NULL,
    requested_scopes  TEXT    NOT NULL,
    redirect_url      TEXT,
    state_hash        TEXT,
    expires_at        TEXT,
    expires_at_unix   BIGINT,
    has_refresh_token BOOLEAN NOT NULL DEFAULT FALSE,
    status_reason     TEXT,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL,
    last_refreshed_at TEXT,
    last_used_at      TEXT,
    version           BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX connections_by_user ON connections (workspace_id, user_id);
CREATE INDEX connections_by_auth_config ON connections (workspace_id, auth_config_id, status);
-- Not UNIQUE: a duplicate must never wedge the projector; lookups also require 'initiated'.
CREATE INDEX connections_by_state_hash ON connections (state_hash) WHERE state_hash IS NOT NULL;
CREATE INDEX connections_by_expiry ON connections (expires_at_unix) WHERE expires_at_unix IS NOT NULL;
