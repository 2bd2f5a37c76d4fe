-- The audit view keyed by its position. `position BIGINT PRIMARY KEY` (0001) is not SQLite's
-- row id, so every row lived in the table and in an index of positions besides: one B-tree
-- more to write per event, and every read by position went through it. Rebuilt with the
-- position as the row id; the same columns and rows.
-- Each index ends in the row id, so it keeps its rows in position order without naming the
-- position again. The indexes on the user, auth config, connection and outcome (columns an
-- administrative event leaves empty) hold only the rows that have one: every query on them
-- asks for a value (`col = ?`), which a `WHERE col IS NOT NULL` index answers.
CREATE TABLE audit_events_keyed (
    position          INTEGER PRIMARY KEY,
    event_id          TEXT   NOT NULL UNIQUE,
    workspace_id      TEXT   NOT NULL,
    aggregate_type    TEXT   NOT NULL,
    aggregate_id      TEXT   NOT NULL,
    aggregate_version BIGINT NOT NULL,
    kind              TEXT   NOT NULL,
    actor_type        TEXT   NOT NULL,
    actor_id          TEXT   NOT NULL,
    occurred_at       TEXT   NOT NULL,
    key_id            TEXT   NOT NULL,
    occurred_at_unix  BIGINT,
    event_hash        TEXT,
    user_id           TEXT,
    auth_config_id    TEXT,
    connection_id     TEXT,
    token_id          TEXT,
    tool              TEXT,
    outcome           TEXT,
    reason            TEXT
);
INSERT INTO audit_events_keyed (position, event_id, workspace_id, aggregate_type, aggregate_id,
    aggregate_version, kind, actor_type, actor_id, occurred_at, key_id, occurred_at_unix,
    event_hash, user_id, auth_config_id, connection_id, token_id, tool, outcome, reason)
SELECT position, event_id, workspace_id, aggregate_type, aggregate_id,
    aggregate_version, kind, actor_type, actor_id, occurred_at, key_id, occurred_at_unix,
    event_hash, user_id, auth_config_id, connection_id, token_id, tool, outcome, reason
FROM audit_events ORDER BY position;
DROP TABLE audit_events;
ALTER TABLE audit_events_keyed RENAME TO audit_events;

CREATE INDEX audit_events_by_workspace ON audit_events (workspace_id);
CREATE INDEX audit_events_by_kind ON audit_events (workspace_id, kind);
CREATE INDEX audit_events_by_time ON audit_events (workspace_id, occurred_at_unix);
CREATE INDEX audit_events_by_actor ON audit_events (workspace_id, actor_id);
CREATE INDEX audit_events_by_user ON audit_events (workspace_id, user_id)
    WHERE user_id IS NOT NULL;
CREATE INDEX audit_events_by_auth_config ON audit_events (workspace_id, auth_config_id)
    WHERE auth_config_id IS NOT NULL;
CREATE INDEX audit_events_by_connection ON audit_events (workspace_id, connection_id)
    WHERE connection_id IS NOT NULL;
CREATE INDEX audit_events_by_outcome ON audit_events (workspace_id, outcome)
    WHERE outcome IS NOT NULL;
