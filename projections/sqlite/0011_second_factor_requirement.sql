-- Whether the workspace requires every console member to sign in with a second factor
-- (`workspace.second_factor_requirement_set`).
ALTER TABLE workspaces ADD COLUMN second_factor_required BOOLEAN NOT NULL DEFAULT FALSE;
