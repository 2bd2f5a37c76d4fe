-- Step-up approvals, so an end user can list the requests waiting for them.
CREATE TABLE approvals (
    workspace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    argument_fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    tool_call_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX approvals_by_user ON approvals (workspace_id, user_id, id);
