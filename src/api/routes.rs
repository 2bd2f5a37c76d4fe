//! The route table: every route, its method, path and the permission it needs. The router
//! is built from this table, authorization reads it, and `schemas/openapi.json` must list
//! exactly these routes (a test checks). One mechanism, no per-handler role checks.

use crate::domain::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// No credentials needed (probes).
    Public,
    /// Any authenticated key of the workspace.
    Authenticated,
    /// Read current state (auth configs, connections, workspace).
    ReadState,
    /// Create, list and revoke API keys.
    ManageApiKeys,
    /// Change workspace settings (the identity provider).
    ManageWorkspace,
    /// Invite team members, change their roles, remove them, reset their second factor.
    ManageMembers,
    /// Create, change, disable and delete auth configs.
    ManageAuthConfigs,
    /// Query and export the audit history.
    ReadAudit,
    /// Create, refresh, revoke and delete connections.
    ManageConnections,
    /// An end user with a JWT from the workspace's identity provider (never an API key).
    EndUser,
    /// Get scoped tokens and run tools with an API key (agents, developers, admins).
    UseTools,
    /// `UseTools`, or a scoped token in place of the key (listing and running tools).
    CallTools,
    /// Define and remove the workspace's own tools.
    ManageTools,
    /// Approve or deny a step-up request: an admin key, or the connection's end user (JWT).
    DecideApprovals,
    /// Undo a tool call: an admin or developer key, or the connection's end user (JWT).
    UndoToolCalls,
    /// Register, change, rotate, replay and delete webhook endpoints; see their deliveries.
    ManageWebhooks,
}

/// Which roles hold a permission. The README's permission table mirrors this.
pub fn role_allows(role: Role, permission: Permission) -> bool {
    use Permission::*;
    use Role::*;
    match permission {
        Public | Authenticated => true,
        ReadState => matches!(role, Admin | Developer | Viewer | Auditor),
        ManageApiKeys | ManageWorkspace | ManageMembers => matches!(role, Admin),
        ReadAudit => matches!(role, Admin | Auditor),
        ManageAuthConfigs | ManageConnections | ManageTools => matches!(role, Admin | Developer),
        UseTools | CallTools => matches!(role, Admin | Developer | Agent),
        DecideApprovals => matches!(role, Admin),
        UndoToolCalls => matches!(role, Admin | Developer),
        EndUser => false,
        ManageWebhooks => matches!(role, Admin | Developer),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    Healthz,
    Readyz,
    Metrics,
    GetWorkspace,
    CreateApiKey,
    ListApiKeys,
    GetApiKey,
    RevokeApiKey,
    ConfigureIdentityProvider,
    Me,
    CreateAuthConfig,
    ListAuthConfigs,
    GetAuthConfig,
    UpdateAuthConfig,
    DeleteAuthConfig,
    DisableAuthConfig,
    EnableAuthConfig,
    AuthConfigVersions,
    TestAuthConfig,
    CreateConnection,
    ListConnections,
    GetConnection,
    RefreshConnection,
    RevokeConnection,
    DeleteConnection,
    OAuthCallback,
    MyConnections,
    RevokeMyConnection,
    AuditEvents,
    AuditEvent,
    AuditCheckpoints,
    AuditConsistency,
    AuditCosign,
    AuditExport,
    AuditAccess,
    Jwks,
    IssueToken,
    GetToken,
    RevokeToken,
    ListTools,
    DefineTool,
    RemoveTool,
    ExecuteTool,
    GetApproval,
    ApproveApproval,
    DenyApproval,
    CreateGateway,
    ListGateways,
    GetGateway,
    ReplaceGateway,
    DeleteGateway,
    ReleaseAccessToken,
    McpGateway,
    SetToolResponseStorage,
    MyApprovals,
    ListMembers,
    InviteMember,
    GetMember,
    ChangeMemberRole,
    RemoveMember,
    ResetMemberSecondFactor,
    SetSecondFactorRequirement,
    SetAgentConnectFlows,
    CreateWebhook,
    ListWebhooks,
    GetWebhook,
    UpdateWebhook,
    DeleteWebhook,
    RotateWebhookSecret,
    ReplayWebhook,
    WebhookDeliveries,
    /// The MCP server (Streamable HTTP, stateless: POST only).
    Mcp,
    UndoToolCall,
    /// The MCP server acting as the signed-in person of a workspace (their JWT), and one
    /// gateway's; their RFC 9728 protected resource metadata, and the root's.
    McpPerson,
    McpPersonGateway,
    ProtectedResource,
    McpPersonMetadata,
    McpPersonGatewayMetadata,
    IssueDynamicCredentials,
}

#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub id: RouteId,
    pub method: &'static str,
    /// axum path syntax, which is also OpenAPI's (`{id}`).
    pub path: &'static str,
    pub permission: Permission,
}

pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        id: RouteId::Healthz,
        method: "GET",
        path: "/healthz",
        permission: Permission::Public,
    },
    RouteSpec {
        id: RouteId::Readyz,
        method: "GET",
        path: "/readyz",
        permission: Permission::Public,
    },
    RouteSpec {
        id: RouteId::Metrics,
        method: "GET",
        path: "/metrics",
        permission: Permission::Public,
    },
    RouteSpec {
        id: RouteId::GetWorkspace,
        method: "GET",
        path: "/v1/workspace",
        permission: Permission::Authenticated,
    },
    RouteSpec {
        id: RouteId::CreateApiKey,
        method: "POST",
        path: "/v1/api-keys",
        permission: Permission::ManageApiKeys,
    },
    RouteSpec {
        id: RouteId::ListApiKeys,
        method: "GET",
        path: "/v1/api-keys",
        permission: Permission::ManageApiKeys,
    },
    RouteSpec {
        id: RouteId::GetApiKey,
        method: "GET",
        path: "/v1/api-keys/{id}",
        permission: Permission::ManageApiKeys,
    },
    RouteSpec {
        id: RouteId::RevokeApiKey,
        method: "DELETE",
        path: "/v1/api-keys/{id}",
        permission: Permission::ManageApiKeys,
    },
    RouteSpec {
        id: RouteId::ConfigureIdentityProvider,
        method: "PUT",
        path: "/v1/workspace/identity-provider",
        permission: Permission::ManageWorkspace,
    },
    RouteSpec {
        id: RouteId::Me,
        method: "GET",
        path: "/v1/me",
        permission: Permission::EndUser,
    },
    RouteSpec {
        id: RouteId::CreateAuthConfig,
        method: "POST",
        path: "/v1/auth-configs",
        permission: Permission::ManageAuthConfigs,
    },
    RouteSpec {
        id: RouteId::ListAuthConfigs,
        method: "GET",
        path: "/v1/auth-configs",
        permission: Permission::ReadState,
    },
    RouteSpec {
        id: RouteId::GetAuthConfig,
        method: "GET",
        path: "/v1/auth-configs/{id}",
        permission: Permission::ReadState,
    },
    RouteSpec {
        id: RouteId::UpdateAuthConfig,
        method: "PATCH",
        path: "/v1/auth-configs/{id}",
        permission: Permission::ManageAuthConfigs,
    },
    RouteSpec {
        id: RouteId::DeleteAuthConfig,
        method: "DELETE",
        path: "/v1/auth-configs/{id}",
        permission: Permission::ManageAuthConfigs,
    },
    RouteSpec {
        id: RouteId::DisableAuthConfig,
        method: "POST",
        path: "/v1/auth-configs/{id}/disable",
        permission: Permission::ManageAuthConfigs,
    },
    RouteSpec {
        id: RouteId::EnableAuthConfig,
        method: "POST",
        path: "/v1/auth-configs/{id}/enable",
        permission: Permission::ManageAuthConfigs,
    },
    RouteSpec {
        id: RouteId::AuthConfigVersions,
        method: "GET",
        path: "/v1/auth-configs/{id}/versions",
        permission: Permission::ReadState,
    },
    RouteSpec {
        id: RouteId::TestAuthConfig,
        method: "POST",
        path: "/v1/auth-configs/{id}/test",
        permission: Permission::ManageAuthConfigs,
    },
    RouteSpec {
        id: RouteId::CreateConnection,
        method: "POST",
        path: "/v1/connections",
        permission: Permission::ManageConnections,
    },
    RouteSpec {
        id: RouteId::ListConnections,
        method: "GET",
        path: "/v1/connections",
        permission: Permission::ReadState,
    },
    RouteSpec {
        id: RouteId::GetConnection,
        method: "GET",
        path: "/v1/connections/{id}",
        permission: Permission::ReadState,
    },
    RouteSpec {
        id: RouteId::RefreshConnection,
        method: "POST",
        path: "/v1/connections/{id}/refresh",
        permission: Permission::ManageConnections,
    },
    RouteSpec {
        id: RouteId::RevokeConnection,
        method: "POST",
        path: "/v1/connections/{id}/revoke",
        permission: Permission::ManageConnections,
    },
    RouteSpec {
        id: RouteId::DeleteConnection,
        method: "DELETE",
        path: "/v1/connections/{id}",
        permission: Permission::ManageConnections,
    },
    RouteSpec {
        id: RouteId::OAuthCallback,
        method: "GET",
        path: "/v1/oauth/callback",
        permission: Permission::Public,
    },
    RouteSpec {
        id: RouteId::MyConnections,
        method: "GET",
        path: "/v1/me/connections",
        permission: Permission::EndUser,
    },
    RouteSpec {
        id: RouteId::RevokeMyConnection,
        method: "POST",
        path: "/v1/me/connections/{id}/revoke",
        permission: Permission::EndUser,
    },
    RouteSpec {
        id: RouteId::AuditEvents,
        method: "GET",
        path: "/v1/audit/events",
        permission: Permission::ReadAudit,
    },
    RouteSpec {
        id: RouteId::AuditEvent,
        method: "GET",
        path: "/v1/audit/events/{id}",
        permission: Permission::ReadAudit,
    },
    RouteSpec {
        id: RouteId::AuditCheckpoints,
        method: "GET",
        path: "/v1/audit/checkpoints",
        permission: Permission::ReadAudit,
    },
    RouteSpec {
        id: RouteId::AuditConsistency,
        method: "GET",
        path: "/v1/audit/checkpoints/{id}/consistency",
        permission: Permission::ReadAudit,
    },
    RouteSpec {
        id: RouteId::AuditCosign,
        method: "POST",
        path: "/v1/audit/checkpoints/{id}/cosignatures",
        permission: Permission::ReadAudit,
    },
    RouteSpec {
        id: RouteId::AuditExport,
        method: "GET",
        path: "/v1/audit/export",
        permission: Permission::ReadAudit,
    },
    RouteSpec {
        id: RouteId::AuditAccess,
        method: "GET",
        path: "/v1/audit/access",
        permission: Permission::ReadAudit,
    },
    RouteSpec {
        id: RouteId::Jwks,
        method: "GET",
        path: "/.well-known/jwks.json",
        permission: Permission::Public,
    },
    RouteSpec {
        id: RouteId::IssueToken,
        method: "POST",
        path: "/v1/tokens",
        permission: Permission::UseTools,
    },
    RouteSpec {
        id: RouteId::GetToken,
        method: "GET",
        path: "/v1/tokens/{id}",
        permission: Permission::UseTools,
    },
    RouteSpec {
        id: RouteId::RevokeToken,
        method: "POST",
        path: "/v1/tokens/{id}/revoke",
        permission: Permission::UseTools,
    },
    RouteSpec {
        id: RouteId::ListTools,
        method: "GET",
        path: "/v1/tools",
        permission: Permission::CallTools,
    },
    RouteSpec {
        id: RouteId::DefineTool,
        method: "POST",
        path: "/v1/tools",
        permission: Permission::ManageTools,
    },
    RouteSpec {
        id: RouteId::RemoveTool,
        method: "DELETE",
        path: "/v1/tools/{name}",
        permission: Permission::ManageTools,
    },
    RouteSpec {
        id: RouteId::ExecuteTool,
        method: "POST",
        path: "/v1/tools/execute",
        permission: Permission::CallTools,
    },
    RouteSpec {
        id: RouteId::GetApproval,
        method: "GET",
        path: "/v1/approvals/{id}",
        permission: Permission::UseTools,
    },
    RouteSpec {
        id: RouteId::ApproveApproval,
        method: "POST",
        path: "/v1/approvals/{id}/approve",
        permission: Permission::DecideApprovals,
    },
    RouteSpec {
        id: RouteId::DenyApproval,
        method: "POST",
        path: "/v1/approvals/{id}/deny",
        permission: Permission::DecideApprovals,
    },
    RouteSpec {
        id: RouteId::Mcp,
        method: "POST",
        path: "/mcp",
        permission: Permission::CallTools,
    },
    RouteSpec {
        id: RouteId::CreateGateway,
        method: "POST",
        path: "/v1/gateways",
        permission: Permission::ManageTools,
    },
    RouteSpec {
        id: RouteId::ListGateways,
        method: "GET",
        path: "/v1/gateways",
        permission: Permission::ReadState,
    },
    RouteSpec {
        id: RouteId::GetGateway,
        method: "GET",
        path: "/v1/gateways/{id}",
        permission: Permission::ReadState,
    },
    RouteSpec {
        id: RouteId::ReplaceGateway,
        method: "PUT",
        path: "/v1/gateways/{id}",
        permission: Permission::ManageTools,
    },
    RouteSpec {
        id: RouteId::DeleteGateway,
        method: "DELETE",
        path: "/v1/gateways/{id}",
        permission: Permission::ManageTools,
    },
    RouteSpec {
        id: RouteId::ReleaseAccessToken,
        method: "POST",
        path: "/v1/connections/{id}/access-token",
        permission: Permission::UseTools,
    },
    RouteSpec {
        id: RouteId::McpGateway,
        method: "POST",
        path: "/mcp/{gateway_id}",
        permission: Permission::CallTools,
    },
    RouteSpec {
        id: RouteId::SetToolResponseStorage,
        method: "PUT",
        path: "/v1/workspace/tool-response-storage",
        permission: Permission::ManageWorkspace,
    },
    RouteSpec {
        id: RouteId::MyApprovals,
        method: "GET",
        path: "/v1/me/approvals",
        permission: Permission::EndUser,
    },
    RouteSpec {
        id: RouteId::ListMembers,
        method: "GET",
        path: "/v1/members",
        permission: Permission::ManageMembers,
    },
    RouteSpec {
        id: RouteId::InviteMember,
        method: "POST",
        path: "/v1/members",
        permission: Permission::ManageMembers,
    },
    RouteSpec {
        id: RouteId::GetMember,
        method: "GET",
        path: "/v1/members/{id}",
        permission: Permission::ManageMembers,
    },
    RouteSpec {
        id: RouteId::ChangeMemberRole,
        method: "PATCH",
        path: "/v1/members/{id}",
        permission: Permission::ManageMembers,
    },
    RouteSpec {
        id: RouteId::RemoveMember,
        method: "DELETE",
        path: "/v1/members/{id}",
        permission: Permission::ManageMembers,
    },
    RouteSpec {
        id: RouteId::ResetMemberSecondFactor,
        method: "POST",
        path: "/v1/members/{id}/second-factor/reset",
        permission: Permission::ManageMembers,
    },
    RouteSpec {
        id: RouteId::SetSecondFactorRequirement,
        method: "PUT",
        path: "/v1/workspace/second-factor-requirement",
        permission: Permission::ManageWorkspace,
    },
    RouteSpec {
        id: RouteId::SetAgentConnectFlows,
        method: "PUT",
        path: "/v1/workspace/agent-connect-flows",
        permission: Permission::ManageWorkspace,
    },
    RouteSpec {
        id: RouteId::UndoToolCall,
        method: "POST",
        path: "/v1/tool-calls/{id}/undo",
        permission: Permission::UndoToolCalls,
    },
    RouteSpec {
        id: RouteId::McpPerson,
        method: "POST",
        path: "/mcp/w/{workspace_id}",
        permission: Permission::EndUser,
    },
    RouteSpec {
        id: RouteId::McpPersonGateway,
        method: "POST",
        path: "/mcp/w/{workspace_id}/{gateway_id}",
        permission: Permission::EndUser,
    },
    RouteSpec {
        id: RouteId::ProtectedResource,
        method: "GET",
        path: "/.well-known/oauth-protected-resource",
        permission: Permission::Public,
    },
    RouteSpec {
        id: RouteId::McpPersonMetadata,
        method: "GET",
        path: "/.well-known/oauth-protected-resource/mcp/w/{workspace_id}",
        permission: Permission::Public,
    },
    RouteSpec {
        id: RouteId::McpPersonGatewayMetadata,
        method: "GET",
        path: "/.well-known/oauth-protected-resource/mcp/w/{workspace_id}/{gateway_id}",
        permission: Permission::Public,
    },
    RouteSpec {
        id: RouteId::CreateWebhook,
        method: "POST",
        path: "/v1/webhooks",
        permission: Permission::ManageWebhooks,
    },
    RouteSpec {
        id: RouteId::ListWebhooks,
        method: "GET",
        path: "/v1/webhooks",
        permission: Permission::ManageWebhooks,
    },
    RouteSpec {
        id: RouteId::GetWebhook,
        method: "GET",
        path: "/v1/webhooks/{id}",
        permission: Permission::ManageWebhooks,
    },
    RouteSpec {
        id: RouteId::UpdateWebhook,
        method: "PATCH",
        path: "/v1/webhooks/{id}",
        permission: Permission::ManageWebhooks,
    },
    RouteSpec {
        id: RouteId::DeleteWebhook,
        method: "DELETE",
        path: "/v1/webhooks/{id}",
        permission: Permission::ManageWebhooks,
    },
    RouteSpec {
        id: RouteId::RotateWebhookSecret,
        method: "POST",
        path: "/v1/webhooks/{id}/rotate-secret",
        permission: Permission::ManageWebhooks,
    },
    RouteSpec {
        id: RouteId::ReplayWebhook,
        method: "POST",
        path: "/v1/webhooks/{id}/replay",
        permission: Permission::ManageWebhooks,
    },
    RouteSpec {
        id: RouteId::WebhookDeliveries,
        method: "GET",
        path: "/v1/webhooks/{id}/deliveries",
        permission: Permission::ManageWebhooks,
    },
    RouteSpec {
        id: RouteId::IssueDynamicCredentials,
        method: "POST",
        path: "/v1/connections/{id}/dynamic-credentials",
        permission: Permission::CallTools,
    },
];

/// The route a request was matched to, put on the request by `api::auth::authorize`, so a
/// handler names its route (for `access.denied`) from the table, never from a literal.
#[derive(Debug, Clone, Copy)]
pub struct Route(pub &'static RouteSpec);

impl Route {
    /// Where a refusal on this route happened, about `target` (the id the caller named).
    pub fn at(self, target: Option<&str>) -> crate::commands::agents::At<'_> {
        crate::commands::agents::At {
            method: self.0.method,
            route: self.0.path,
            target,
        }
    }

    /// `(method, path)` as in the table.
    pub fn pair(self) -> (&'static str, &'static str) {
        (self.0.method, self.0.path)
    }
}

/// The path of route `id` with its one parameter filled in (for links in answers, such as
/// a gateway's `mcp_path`).
pub fn path_to(id: RouteId, param: &str) -> String {
    let path = ROUTES.iter().find(|r| r.id == id).map_or("", |r| r.path);
    match (path.find('{'), path.find('}')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}{param}{}", &path[..open], &path[close + 1..])
        }
        _ => path.to_string(),
    }
}

/// Whether a route accepts an `Idempotency-Key`: every `POST` that creates or acts, but
/// MCP (its own protocol, whose requests carry their own ids).
pub fn idempotent(spec: &RouteSpec) -> bool {
    spec.method == "POST"
        && !matches!(
            spec.id,
            RouteId::Mcp | RouteId::McpGateway | RouteId::McpPerson | RouteId::McpPersonGateway
        )
}

pub fn find(method: &str, path: &str) -> Option<&'static RouteSpec> {
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}

pub const ALL_ROLES: [Role; 5] = [
    Role::Admin,
    Role::Developer,
    Role::Viewer,
    Role::Auditor,
    Role::Agent,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_to_a_route_fills_its_parameter() {
        assert_eq!(path_to(RouteId::McpGateway, "gw_1"), "/mcp/gw_1");
        assert_eq!(
            path_to(RouteId::ApproveApproval, "ap_1"),
            "/v1/approvals/ap_1/approve"
        );
        assert_eq!(path_to(RouteId::Mcp, "ignored"), "/mcp");
    }

    #[test]
    fn every_route_is_unique_and_key_management_is_admin_only() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
        for role in ALL_ROLES {
            assert_eq!(
                role_allows(role, Permission::ManageApiKeys),
                role == Role::Admin
            );
        }
        assert!(!role_allows(Role::Agent, Permission::ReadState));
    }

    /// Connect on demand lets the roles that make connections for any user start a connect
    /// flow for any user (`commands::agents::Asker::may_connect`): exactly these.
    #[test]
    fn keys_that_start_connect_flows_for_anyone_are_those_that_make_connections() {
        for role in ALL_ROLES {
            assert_eq!(
                matches!(role, Role::Admin | Role::Developer),
                role_allows(role, Permission::ManageConnections),
                "{role:?}"
            );
        }
    }
}
