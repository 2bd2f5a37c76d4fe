-- Embedded event log. Append-only: the triggers refuse UPDATE and DELETE through SQL;
-- anyone who edits the file by other means is caught by `authledger verify`.
CREATE TABLE IF NOT EXISTS events (
    position          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id          TEXT    NOT NULL UNIQUE,
    workspace_id      TEXT    NOT NULL,
    aggregate_type    TEXT    NOT NULL,
    aggregate_id      TEXT    NOT NULL,
    aggregate_version INTEGER NOT NULL CHECK (aggregate_version >= 1),
    envelope          BLOB    NOT NULL,
    UNIQUE (workspace_id, aggregate_type, aggregate_id, aggregate_version)
);

CREATE TRIGGER IF NOT EXISTS events_are_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;

CREATE TRIGGER IF NOT EXISTS events_are_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;
