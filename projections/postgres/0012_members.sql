-- Team members as their events say (`member.*`): who is on the team, with which role,
-- whether they joined and sign in with a second factor. Removed members keep their row
-- (status `removed`) until invited again.
CREATE TABLE members (
    workspace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    second_factor BOOLEAN NOT NULL DEFAULT FALSE,
    invited_at TEXT NOT NULL,
    invite_expires_at TEXT,
    joined_at TEXT,
    last_signed_in_at TEXT,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX members_by_invite ON members (workspace_id, invited_at, id);
