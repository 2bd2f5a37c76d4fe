//! The SQL each planned op runs (a `Stmt` on the batch's `Exec`), one function per area.
//! An update of a row that holds a version is guarded by `version - 1`, so an event is
//! never applied twice or out of order (`in_order`).

use super::audit_insert::{audit_insert_sql, LookUp};
use super::connection_insert::connection_insert_sql;
use super::connection_update::{connection_update_sql, RowUpdate};
use super::exec::{Exec, Stmt};
use super::{PgProjections, SqliteProjections};
use crate::projector::op::{
    AgentsOp, ApiKeyOp, AuthConfigVersion, ConnectionOp, DynamicCredentialChange,
    DynamicCredentialOp, MemberChange, MemberOp, Op, WebhookChange, WebhookOp, WorkspaceOp,
};

/// A version-guarded update changes exactly its row; none changed means the row is not at
/// `version - 1`: the event came out of order (or twice).
pub(super) fn in_order(rows_affected: u64, what: &str) -> Result<(), sqlx::Error> {
    if rows_affected == 1 {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!("{what} out of order")))
    }
}

/// Stored public settings with the client secret's fingerprint replaced (a rotation).
fn with_client_secret_fingerprint(settings: &str, fingerprint: String) -> String {
    let mut v: serde_json::Value = serde_json::from_str(settings).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "client_secret".into(),
            serde_json::json!({ "fingerprint": fingerprint }),
        );
    }
    v.to_string()
}

macro_rules! sql_ops {
    ($store:ident) => {
        impl $store {
            pub(super) async fn exec_op(
                tx: &mut impl Exec,
                op: Op,
            ) -> Result<(), sqlx::Error> {
                match op {
                    Op::Audit(a) => {
                        Self::bind_audit(
                            Stmt::new(audit_insert_sql(1, Self::PLACEHOLDERS, LookUp::Yes)),
                            &a,
                            LookUp::Yes,
                        )
                            .run(tx)
                            .await?;
                        Ok(())
                    }
                    Op::Workspace(op) => Self::workspace_op(tx, op).await,
                    Op::ApiKey(op) => Self::api_key_op(tx, op).await,
                    Op::AuthConfig(op) => Self::auth_config_version(tx, op).await,
                    Op::Connection(op) => Self::connection_op(tx, op).await,
                    Op::Agents(op) => Self::agents_op(tx, op).await,
                    Op::Member(op) => Self::member_op(tx, op).await,
                    Op::Webhook(op) => Self::webhook_op(tx, op).await,
                    Op::DynamicCredential(op) => Self::dynamic_credential_op(tx, op).await,
                }
            }

            async fn workspace_op(
                tx: &mut impl Exec,
                op: WorkspaceOp,
            ) -> Result<(), sqlx::Error> {
                match op {
                    WorkspaceOp::Create { id, name, at, version } => {
                        Stmt::new("INSERT INTO workspaces (id, name, created_at, version) VALUES ($1, $2, $3, $4)")
                            .bind(id)
                            .bind(name)
                            .bind(at)
                            .bind(version)
                            .run(tx)
                            .await?;
                        Ok(())
                    }
                    WorkspaceOp::ConfigureIdentityProvider { id, issuer, audience, jwks_url, version } => {
                        let done = Stmt::new(
                            "UPDATE workspaces SET idp_issuer = $1, idp_audience = $2, idp_jwks_url = $3, version = $4
                             WHERE id = $5 AND version = $4 - 1",
                        )
                        .bind(issuer)
                        .bind(audience)
                        .bind(jwks_url)
                        .bind(version)
                        .bind(id)
                        .run(tx)
                        .await?;
                        in_order(done, "workspace change")
                    }
                    WorkspaceOp::SetToolResponseStorage { id, store_tool_responses, version } => {
                        let done = Stmt::new(
                            "UPDATE workspaces SET store_tool_responses = $1, version = $2
                             WHERE id = $3 AND version = $2 - 1",
                        )
                        .bind(store_tool_responses)
                        .bind(version)
                        .bind(id)
                        .run(tx)
                        .await?;
                        in_order(done, "workspace change")
                    }
                    WorkspaceOp::Advance { id, version } => {
                        let done = Stmt::new(
                            "UPDATE workspaces SET version = $1 WHERE id = $2 AND version = $1 - 1",
                        )
                        .bind(version)
                        .bind(id)
                        .run(tx)
                        .await?;
                        in_order(done, "workspace change")
                    }
                    WorkspaceOp::SetSecondFactorRequirement { id, required, version } => {
                        let done = Stmt::new(
                            "UPDATE workspaces SET second_factor_required = $1, version = $2
                             WHERE id = $3 AND version = $2 - 1",
                        )
                        .bind(required)
                        .bind(version)
                        .bind(id)
                        .run(tx)
                        .await?;
                        in_order(done, "workspace change")
                    }
                    WorkspaceOp::SetAgentConnectFlows { id, any_user, version } => {
                        let done = Stmt::new(
                            "UPDATE workspaces SET agents_connect_any_user = $1, version = $2
                             WHERE id = $3 AND version = $2 - 1",
                        )
                        .bind(any_user)
                        .bind(version)
                        .bind(id)
                        .run(tx)
                        .await?;
                        in_order(done, "workspace change")
                    }
                }
            }

            async fn api_key_op(
                tx: &mut impl Exec,
                op: ApiKeyOp,
            ) -> Result<(), sqlx::Error> {
                match op {
                    ApiKeyOp::Create { workspace_id, id, name, role, key_prefix, key_hash, at, expires_at, version } => {
                        Stmt::new(
                            "INSERT INTO api_keys (workspace_id, id, name, role, key_prefix, key_hash,
                             created_at, expires_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(workspace_id)
                        .bind(id)
                        .bind(name)
                        .bind(role)
                        .bind(key_prefix)
                        .bind(key_hash)
                        .bind(at)
                        .bind(expires_at)
                        .bind(version)
                        .run(tx)
                        .await?;
                        Ok(())
                    }
                    ApiKeyOp::Revoke { workspace_id, id, at, version } => {
                        let done = Stmt::new(
                            "UPDATE api_keys SET revoked_at = $1, version = $2
                             WHERE workspace_id = $3 AND id = $4 AND version = $2 - 1",
                        )
                        .bind(at)
                        .bind(version)
                        .bind(workspace_id)
                        .bind(id)
                        .run(tx)
                        .await?;
                        in_order(done, "api key revocation")
                    }
                }
            }

            /// Sets the current row (inserted at version 1), then records the version as it
            /// now reads.
            async fn auth_config_version(
                tx: &mut impl Exec,
                op: AuthConfigVersion,
            ) -> Result<(), sqlx::Error> {
                let settings = match (op.settings, op.client_secret_fingerprint) {
                    (None, Some(fingerprint)) => {
                        let current = tx.text(Stmt::new(
                            "SELECT settings FROM auth_configs WHERE workspace_id = $1 AND id = $2",
                        )
                        .bind(&op.workspace_id)
                        .bind(&op.id))
                        .await?;
                        current.map(|s| with_client_secret_fingerprint(&s, fingerprint))
                    }
                    (settings, _) => settings,
                };
                if op.version == 1 {
                    Stmt::new(
                        "INSERT INTO auth_configs (workspace_id, id, name, provider, auth_type, status, version,
                         settings, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $8)",
                    )
                    .bind(&op.workspace_id)
                    .bind(&op.id)
                    .bind(op.name.unwrap_or_default())
                    .bind(op.provider.unwrap_or_default())
                    .bind(op.auth_type.unwrap_or_default())
                    .bind(op.status.unwrap_or_default())
                    .bind(settings.unwrap_or_default())
                    .bind(&op.at)
                    .run(tx)
                    .await?;
                } else {
                    let done = Stmt::new(
                        "UPDATE auth_configs SET name = COALESCE($1, name), status = COALESCE($2, status),
                         settings = COALESCE($3, settings), version = $4, updated_at = $5
                         WHERE workspace_id = $6 AND id = $7 AND version = $4 - 1",
                    )
                    .bind(op.name)
                    .bind(op.status)
                    .bind(settings)
                    .bind(op.version)
                    .bind(&op.at)
                    .bind(&op.workspace_id)
                    .bind(&op.id)
                    .run(tx)
                    .await?;
                    in_order(done, "auth config change")?;
                }
                Stmt::new(
                    "INSERT INTO auth_config_versions (workspace_id, id, version, kind, name, settings, changed, at, actor_id)
                     SELECT workspace_id, id, version, $1, name, settings, $2, $3, $4 FROM auth_configs
                     WHERE workspace_id = $5 AND id = $6",
                )
                .bind(op.kind)
                .bind(op.changed)
                .bind(&op.at)
                .bind(op.actor_id)
                .bind(&op.workspace_id)
                .bind(&op.id)
                .run(tx)
                .await?;
                Ok(())
            }

            async fn connection_op(
                tx: &mut impl Exec,
                op: ConnectionOp,
            ) -> Result<(), sqlx::Error> {
                if op.change.new.is_some() {
                    return Self::insert_connections(tx, &[&op]).await;
                }
                let done = Self::update_connections(tx, &[RowUpdate::of(0, op)]).await?;
                in_order(done, "connection change")
            }

            /// Inserts new connection rows (each with `change.new`) in one statement.
            pub(super) async fn insert_connections(
                tx: &mut impl Exec,
                ops: &[&ConnectionOp],
            ) -> Result<(), sqlx::Error> {
                let mut query = Stmt::new(connection_insert_sql(ops.len(), Self::PLACEHOLDERS));
                for op in ops {
                    let change = &op.change;
                    let new = change.new.as_ref();
                    query = query
                        .bind(op.workspace_id.as_str())
                        .bind(op.id.as_str())
                        .bind(new.map(|n| n.auth_config_id.as_str()))
                        .bind(new.map(|n| n.user_id.as_str()))
                        .bind(change.status.unwrap_or_default())
                        .bind(change.scopes.as_deref().unwrap_or("[]"))
                        .bind(new.map(|n| n.requested_scopes.as_str()))
                        .bind(new.and_then(|n| n.redirect_url.as_deref()))
                        .bind(new.and_then(|n| n.state_hash.as_deref()))
                        .bind(op.at.as_str())
                        .bind(op.at.as_str())
                        .bind(op.version);
                }
                query.run(tx).await?;
                Ok(())
            }

            /// Updates distinct connection rows (each folded) in one statement;
            /// returns how many rows it changed (fewer than given: one came out of order).
            pub(super) async fn update_connections(
                tx: &mut impl Exec,
                rows: &[RowUpdate],
            ) -> Result<u64, sqlx::Error> {
                let mut query = Stmt::new(connection_update_sql(rows.len(), Self::PLACEHOLDERS));
                for row in rows {
                    let tokens = row.tokens.as_ref();
                    query = query
                        .bind(row.status)
                        .bind(row.scopes.as_deref())
                        .bind(tokens.is_some())
                        .bind(tokens.and_then(|t| t.expires_at.as_deref()))
                        .bind(tokens.and_then(|t| t.expires_at_unix))
                        .bind(tokens.is_some_and(|t| t.has_refresh_token))
                        .bind(row.clear_state_hash)
                        .bind(row.status_reason.is_some())
                        .bind(row.status_reason.as_ref().and_then(|r| r.as_deref()))
                        .bind(row.refreshed_at.as_deref())
                        .bind(row.at.as_str())
                        .bind(row.version)
                        .bind(row.from_version)
                        .bind(row.workspace_id.as_str())
                        .bind(row.id.as_str());
                }
                query.run(tx).await
            }

            async fn agents_op(
                tx: &mut impl Exec,
                op: AgentsOp,
            ) -> Result<(), sqlx::Error> {
                match op {
                    AgentsOp::DefineWorkspaceTool { workspace_id, name, definition, version, at } => {
                        Stmt::new(
                            "INSERT INTO workspace_tools (workspace_id, name, definition, version, created_at, updated_at)
                             VALUES ($1, $2, $3, $4, $5, $5)
                             ON CONFLICT (workspace_id, name) DO UPDATE SET definition = $3, version = $4, updated_at = $5",
                        )
                        .bind(workspace_id)
                        .bind(name)
                        .bind(definition)
                        .bind(version)
                        .bind(at)
                        .run(tx)
                        .await?;
                    }
                    AgentsOp::RemoveWorkspaceTool { workspace_id, name } => {
                        Stmt::new("DELETE FROM workspace_tools WHERE workspace_id = $1 AND name = $2")
                            .bind(workspace_id)
                            .bind(name)
                            .run(tx)
                            .await?;
                    }
                    AgentsOp::RequestApproval { workspace_id, id, user_id, connection_id, tool, argument_fingerprint, expires_at, at } => {
                        Stmt::new(
                            "INSERT INTO approvals (workspace_id, id, user_id, connection_id, tool, argument_fingerprint,
                             status, expires_at, created_at, updated_at)
                             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $8)",
                        )
                        .bind(workspace_id)
                        .bind(id)
                        .bind(user_id)
                        .bind(connection_id)
                        .bind(tool)
                        .bind(argument_fingerprint)
                        .bind(expires_at)
                        .bind(at)
                        .run(tx)
                        .await?;
                    }
                    AgentsOp::ApprovalStatus { workspace_id, id, status, tool_call_id, at } => {
                        Stmt::new(
                            "UPDATE approvals SET status = $3, tool_call_id = COALESCE($4, tool_call_id), updated_at = $5
                             WHERE workspace_id = $1 AND id = $2",
                        )
                        .bind(workspace_id)
                        .bind(id)
                        .bind(status)
                        .bind(tool_call_id)
                        .bind(at)
                        .run(tx)
                        .await?;
                    }
                    AgentsOp::DefineGateway { workspace_id, id, name, servers, agent_key_ids, version, at } => {
                        Self::define_gateway(tx, (&workspace_id, &id), name, servers, agent_key_ids, (version, at)).await?;
                    }
                    AgentsOp::DeleteGateway { workspace_id, id, version, at } => {
                        // Bindings stay: a key bound only to deleted gateways reaches nothing
                        // (deleting a gateway never widens what its agents may do).
                        Stmt::new(
                            "UPDATE gateways SET status = 'deleted', version = $3, updated_at = $4
                             WHERE workspace_id = $1 AND id = $2",
                        )
                        .bind(&workspace_id)
                        .bind(&id)
                        .bind(version)
                        .bind(at)
                        .run(tx)
                        .await?;
                    }
                }
                Ok(())
            }

            async fn define_gateway(
                tx: &mut impl Exec,
                (workspace_id, id): (&str, &str),
                name: String,
                servers: String,
                agent_key_ids: Vec<String>,
                (version, at): (i64, String),
            ) -> Result<(), sqlx::Error> {
                let keys = serde_json::to_string(&agent_key_ids).unwrap_or_default();
                Stmt::new(
                    "INSERT INTO gateways (workspace_id, id, name, servers, agent_key_ids, status, version, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $7)
                     ON CONFLICT (workspace_id, id) DO UPDATE SET name = $3, servers = $4, agent_key_ids = $5,
                     version = $6, updated_at = $7",
                )
                .bind(workspace_id)
                .bind(id)
                .bind(name)
                .bind(servers)
                .bind(keys)
                .bind(version)
                .bind(at)
                .run(tx)
                .await?;
                // Keys left out are released, not forgotten: a key once bound stays
                // restricted to the gateways that list it.
                Stmt::new("UPDATE gateway_keys SET released = TRUE WHERE workspace_id = $1 AND gateway_id = $2")
                    .bind(workspace_id)
                    .bind(id)
                    .run(tx)
                    .await?;
                for key in agent_key_ids {
                    Stmt::new(
                        "INSERT INTO gateway_keys (workspace_id, gateway_id, api_key_id, released)
                         VALUES ($1, $2, $3, FALSE)
                         ON CONFLICT (workspace_id, gateway_id, api_key_id) DO UPDATE SET released = FALSE",
                    )
                    .bind(workspace_id)
                    .bind(id)
                    .bind(key)
                    .run(tx)
                    .await?;
                }
                Ok(())
            }

            async fn member_op(
                tx: &mut impl Exec,
                op: MemberOp,
            ) -> Result<(), sqlx::Error> {
                let MemberOp { workspace_id, id, version, at, change } = op;
                // $1 workspace, $2 id, $3 version, $4 the event's time, $5.. the change's.
                let (sql, value) = match change {
                    MemberChange::Invited { email, role, expires_at } => {
                        let done = Stmt::new(
                            "INSERT INTO members (workspace_id, id, email, role, status, second_factor,
                                                  invited_at, invite_expires_at, updated_at, version)
                             VALUES ($1, $2, $5, $6, 'invited', FALSE, $4, $7, $4, $3)
                             ON CONFLICT (workspace_id, id) DO UPDATE SET
                                 email = excluded.email, role = excluded.role, status = 'invited',
                                 second_factor = FALSE, invited_at = excluded.invited_at,
                                 invite_expires_at = excluded.invite_expires_at, joined_at = NULL,
                                 updated_at = excluded.updated_at, version = excluded.version
                             WHERE members.version = excluded.version - 1",
                        )
                        .bind(workspace_id)
                        .bind(id)
                        .bind(version)
                        .bind(at)
                        .bind(email)
                        .bind(role)
                        .bind(expires_at)
                        .run(tx)
                        .await?;
                        return in_order(done, "member change");
                    }
                    MemberChange::Joined => (
                        "status = 'active', joined_at = $4, invite_expires_at = NULL,",
                        None,
                    ),
                    MemberChange::SignedIn => ("last_signed_in_at = $4,", None),
                    MemberChange::Role(role) => ("role = $5,", Some(role)),
                    MemberChange::SecondFactor(on) => (
                        if on { "second_factor = TRUE," } else { "second_factor = FALSE," },
                        None,
                    ),
                    MemberChange::Removed => (
                        "status = 'removed', second_factor = FALSE, invite_expires_at = NULL,",
                        None,
                    ),
                    MemberChange::Version => ("", None),
                };
                let statement = format!(
                    "UPDATE members SET {sql} updated_at = $4, version = $3
                     WHERE workspace_id = $1 AND id = $2 AND version = $3 - 1"
                );
                let mut query = Stmt::new(statement)
                    .bind(workspace_id)
                    .bind(id)
                    .bind(version)
                    .bind(at);
                if let Some(value) = value {
                    query = query.bind(value);
                }
                let done = query.run(tx).await?;
                in_order(done, "member change")
            }

            async fn webhook_op(
                tx: &mut impl Exec,
                op: WebhookOp,
            ) -> Result<(), sqlx::Error> {
                let WebhookOp { workspace_id, id, version, at, change } = op;
                if let WebhookChange::Created { url, events, enabled, fingerprint, position } = change {
                    Stmt::new(
                        "INSERT INTO webhooks (workspace_id, id, url, events, enabled, status,
                                               secret_fingerprint, created_position, created_at,
                                               updated_at, version)
                         VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $8, $9)",
                    )
                    .bind(workspace_id)
                    .bind(id)
                    .bind(url)
                    .bind(events)
                    .bind(enabled)
                    .bind(fingerprint)
                    .bind(position)
                    .bind(at)
                    .bind(version)
                    .run(tx)
                    .await?;
                    return Ok(());
                }
                // $1 workspace, $2 id, $3 version, $4 the event's time, $5.. the change's.
                let (sql, values): (&str, Vec<String>) = match change {
                    WebhookChange::Updated { url, events, enabled } => (
                        if enabled {
                            "url = $5, events = $6, enabled = TRUE, disabled_reason = NULL,"
                        } else {
                            "url = $5, events = $6, enabled = FALSE,"
                        },
                        vec![url, events],
                    ),
                    WebhookChange::SecretRotated { fingerprint } => {
                        ("secret_fingerprint = $5,", vec![fingerprint])
                    }
                    WebhookChange::Disabled { reason } => {
                        ("enabled = FALSE, disabled_reason = $5,", vec![reason])
                    }
                    WebhookChange::Deleted => ("status = 'deleted', enabled = FALSE,", vec![]),
                    WebhookChange::Version | WebhookChange::Created { .. } => ("", vec![]),
                };
                let statement = format!(
                    "UPDATE webhooks SET {sql} updated_at = $4, version = $3
                     WHERE workspace_id = $1 AND id = $2 AND version = $3 - 1"
                );
                let mut query = Stmt::new(statement)
                    .bind(workspace_id)
                    .bind(id)
                    .bind(version)
                    .bind(at);
                for value in values {
                    query = query.bind(value);
                }
                let done = query.run(tx).await?;
                in_order(done, "webhook change")
            }

            async fn dynamic_credential_op(
                tx: &mut impl Exec,
                op: DynamicCredentialOp,
            ) -> Result<(), sqlx::Error> {
                let DynamicCredentialOp { workspace_id, id, version, at, change } = op;
                let done = match change {
                    DynamicCredentialChange::Issued { connection_id, username, expires_at_unix } => {
                        Stmt::new(
                            "INSERT INTO dynamic_credentials (workspace_id, id, connection_id, username,
                                                              expires_at_unix, status, created_at,
                                                              updated_at, version)
                             VALUES ($1, $2, $3, $4, $5, 'live', $6, $6, $7)",
                        )
                        .bind(workspace_id)
                        .bind(id)
                        .bind(connection_id)
                        .bind(username)
                        .bind(expires_at_unix)
                        .bind(at)
                        .bind(version)
                        .run(tx)
                        .await?;
                        return Ok(());
                    }
                    DynamicCredentialChange::Status(status) => {
                        Stmt::new(
                            "UPDATE dynamic_credentials SET status = $3, updated_at = $4, version = $5
                             WHERE workspace_id = $1 AND id = $2 AND version = $5 - 1",
                        )
                        .bind(workspace_id)
                        .bind(id)
                        .bind(status)
                        .bind(at)
                        .bind(version)
                        .run(tx)
                        .await?
                    }
                };
                in_order(done, "dynamic credential change")
            }
        }
    };
}

sql_ops!(SqliteProjections);
sql_ops!(PgProjections);
