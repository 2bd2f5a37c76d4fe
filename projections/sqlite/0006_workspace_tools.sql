-- Tools a workspace defines for itself (next to the built-in catalog), by name.
CREATE TABLE workspace_tools (
    workspace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, name)
);
