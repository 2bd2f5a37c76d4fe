-- The compliance audit view: every event flattened for querying (never a secret), plus the
-- hash of every envelope by position (the leaves of the checkpoint Merkle tree).
-- Rows projected before this migration have NULL in the new columns until `replay`.
ALTER TABLE audit_events ADD COLUMN occurred_at_unix BIGINT;
ALTER TABLE audit_events ADD COLUMN event_hash TEXT;
ALTER TABLE audit_events ADD COLUMN user_id TEXT;
ALTER TABLE audit_events ADD COLUMN auth_config_id TEXT;
ALTER TABLE audit_events ADD COLUMN connection_id TEXT;
ALTER TABLE audit_events ADD COLUMN token_id TEXT;
ALTER TABLE audit_events ADD COLUMN tool TEXT;
ALTER TABLE audit_events ADD COLUMN outcome TEXT;
ALTER TABLE audit_events ADD COLUMN reason TEXT;

CREATE INDEX audit_events_by_kind ON audit_events (workspace_id, kind, position);
CREATE INDEX audit_events_by_time ON audit_events (workspace_id, occurred_at_unix, position);
CREATE INDEX audit_events_by_actor ON audit_events (workspace_id, actor_id, position);
CREATE INDEX audit_events_by_user ON audit_events (workspace_id, user_id, position);
CREATE INDEX audit_events_by_auth_config ON audit_events (workspace_id, auth_config_id, position);
CREATE INDEX audit_events_by_connection ON audit_events (workspace_id, connection_id, position);
CREATE INDEX audit_events_by_outcome ON audit_events (workspace_id, outcome, position);
