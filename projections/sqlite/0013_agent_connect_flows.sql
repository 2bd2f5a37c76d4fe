-- Whether agent keys may start connect flows for any user of the workspace
-- (`workspace.agent_connect_flows_set`); off unless the workspace opts in.
ALTER TABLE workspaces ADD COLUMN agents_connect_any_user BOOLEAN NOT NULL DEFAULT FALSE;
