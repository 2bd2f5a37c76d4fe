-- Dynamic database credentials (issue 17): one row per database user the ledger made for
-- an agent, never its password. `status`: live, dropping (a drop is claimed), expired,
-- revoked. The scheduler reads the live ones past their expiry; revoking a connection
-- reads the live ones of the connection.
CREATE TABLE dynamic_credentials (
    workspace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    username TEXT NOT NULL,
    expires_at_unix BIGINT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);

CREATE INDEX dynamic_credentials_due ON dynamic_credentials (status, expires_at_unix);
CREATE INDEX dynamic_credentials_of_connection
    ON dynamic_credentials (workspace_id, connection_id, status);
