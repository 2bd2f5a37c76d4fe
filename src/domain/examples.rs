//! One example of every event kind, for the schema tests and the documentation.

use super::*;

impl Event {
    /// One example of every kind (for schema tests and documentation).
    pub fn examples() -> Vec<Event> {
        let at = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        vec![
            Event::WorkspaceCreated(WorkspaceCreated {
                name: "Acme".into(),
            }),
            Event::IdentityProviderConfigured(IdentityProviderConfigured {
                issuer: "https://idp.example.com/".into(),
                audience: "authledger".into(),
                jwks_url: "https://idp.example.com/.well-known/jwks.json".into(),
                client_id: Some("authledger-me".into()),
                client_secret: Some(example_sealed()),
            }),
            Event::ApiKeyCreated(ApiKeyCreated {
                name: "ci".into(),
                role: Role::Admin,
                key_prefix: "alk_AbCdEf12".into(),
                key_hash: format!("sha256:{}", "ab".repeat(32)),
                expires_at: Some(at),
            }),
            Event::ApiKeyRevoked(ApiKeyRevoked {
                reason: Some("rotated".into()),
            }),
            Event::SigningKeyRotated(SigningKeyRotated {
                previous_key_id: "ed25519:0011223344556677".into(),
                new_key_id: "ed25519:8899aabbccddeeff".into(),
                new_public_key: "A".repeat(43) + "=",
            }),
            Event::AccessDenied(AccessDenied {
                method: "DELETE".into(),
                route: "/v1/api-keys/{id}".into(),
                status: 404,
                reason: DenialReason::OtherWorkspace,
                target_id: Some("01900000-0000-7000-8000-000000000009".into()),
            }),
            Event::AuthConfigCreated(AuthConfigCreated {
                name: "Gmail send-only".into(),
                provider: "google".into(),
                settings: auth_config::AuthSettings::Oauth2(example_oauth2()),
                token_release: false,
                offered: true,
            }),
            Event::AuthConfigUpdated(AuthConfigUpdated {
                version: 2,
                changed: vec!["scopes".into(), "client_secret".into()],
                name: "Gmail send-only".into(),
                settings: auth_config::AuthSettings::ApiKey(auth_config::ApiKeySettings {
                    key_name: "X-Api-Key".into(),
                    location: auth_config::KeyLocation::Header,
                    prefix: None,
                }),
                removed_scopes: vec!["https://www.googleapis.com/auth/gmail.readonly".into()],
                token_release: false,
                offered: false,
            }),
            Event::ClientSecretRotated(ClientSecretRotated {
                version: 3,
                client_secret: example_sealed(),
            }),
            Event::AuthConfigDisabled(AuthConfigStatusChanged {
                version: 4,
                reason: Some("incident 42".into()),
            }),
            Event::AuthConfigEnabled(AuthConfigStatusChanged {
                version: 5,
                reason: None,
            }),
            Event::AuthConfigDeleted(AuthConfigDeleted {
                version: 6,
                revoked_connections: 3,
            }),
            Event::ConnectionInitiated(ConnectionInitiated {
                auth_config_id: "01900000-0000-7000-8000-000000000010".into(),
                auth_config_version: 2,
                user_id: "user-42".into(),
                redirect_url: "https://app.example.com/connected".into(),
                requested_scopes: vec!["https://www.googleapis.com/auth/gmail.send".into()],
                state_hash: format!("sha256:{}", "ef".repeat(32)),
                state_expires_at: at,
                pkce_verifier: Some(example_sealed()),
                data_key_id: "dk:01900000000070008000000000000002".into(),
            }),
            Event::ConnectionCreated(ConnectionCreated {
                auth_config_id: "01900000-0000-7000-8000-000000000011".into(),
                auth_config_version: 1,
                user_id: "user-42".into(),
                credentials: Some(example_sealed()),
                data_key_id: "dk:01900000000070008000000000000003".into(),
            }),
            Event::ConnectionAuthorizationStarted(AuthorizationStarted {}),
            Event::ConnectionAuthorized(ConnectionAuthorized {
                scopes: vec!["https://www.googleapis.com/auth/gmail.send".into()],
                tokens: example_tokens(at),
                granted_scopes: Some(vec![
                    "https://www.googleapis.com/auth/gmail.send".into(),
                    "https://www.googleapis.com/auth/gmail.readonly".into(),
                ]),
            }),
            Event::ConnectionAuthorizationFailed(ConnectionAuthorizationFailed {
                error: "access_denied".into(),
                error_description: Some("The user denied the request".into()),
            }),
            Event::ConnectionRefreshStarted(RefreshStarted {
                trigger: connection::RefreshTrigger::Scheduled,
                lease_expires_at: at,
            }),
            Event::ConnectionRefreshed(ConnectionRefreshed {
                scopes: vec!["https://www.googleapis.com/auth/gmail.send".into()],
                tokens: example_tokens(at),
                refresh_token_rotated: true,
                attempts: 2,
            }),
            Event::ConnectionRefreshFailed(RefreshFailed {
                attempt: 1,
                error: "provider answered 503".into(),
                retryable: true,
                is_final: false,
            }),
            Event::ConnectionExpired(ConnectionExpired {
                reason: "invalid_grant: refresh token revoked".into(),
            }),
            Event::ConnectionNeedsReconsent(NeedsReconsent {
                auth_config_version: 3,
                removed_scopes: vec!["https://www.googleapis.com/auth/gmail.readonly".into()],
            }),
            Event::ConnectionRevoked(ConnectionRevoked {
                reason: Some("user request".into()),
                provider: connection::ProviderRevocation {
                    outcome: "revoked".into(),
                    http_status: Some(200),
                    detail: None,
                },
            }),
            Event::ConnectionDeleted(ConnectionDeleted {
                data_key_id: "dk:01900000000070008000000000000002".into(),
            }),
            Event::AuditQueried(AuditQueried {
                route: "/v1/audit/events".into(),
                filters: [("kind".to_string(), "connection.".to_string())]
                    .into_iter()
                    .collect(),
            }),
            Event::CheckpointCreated(CheckpointCreated {
                sequence: 2,
                from_position: 101,
                to_position: 180,
                count: 80,
                tree_size: 180,
                merkle_root: "5d".repeat(32),
                previous_tree_size: Some(100),
                previous_root: Some("6e".repeat(32)),
                note: None,
            }),
            Event::TokenIssued(TokenIssued {
                connection_id: "01900000-0000-7000-8000-000000000020".into(),
                auth_config_id: "01900000-0000-7000-8000-000000000011".into(),
                user_id: "user-42".into(),
                scopes: vec!["chat:write".into()],
                tool: Some("slack.post_message".into()),
                expires_at: at,
                max_uses: Some(1),
                fingerprint: format!("sha256:{}", "ab".repeat(32)),
                key_id: "ed25519:0011223344556677".into(),
            }),
            Event::TokenUsed(TokenUsed {
                connection_id: "01900000-0000-7000-8000-000000000020".into(),
                use_number: 1,
                tool: "slack.post_message".into(),
                tool_call_id: "01900000-0000-7000-8000-000000000030".into(),
            }),
            Event::TokenRevoked(TokenRevoked {
                reason: Some("agent finished".into()),
            }),
            Event::ToolRequested(ToolRequested {
                tool: "slack.post_message".into(),
                risk: crate::gateway::tools::Risk::Write,
                connection_id: "01900000-0000-7000-8000-000000000020".into(),
                auth_config_id: "01900000-0000-7000-8000-000000000011".into(),
                user_id: "user-42".into(),
                token_id: Some("01900000-0000-7000-8000-000000000021".into()),
                approval_id: None,
                mcp_client: None,
                argument_fingerprint: format!("sha256:{}", "12".repeat(32)),
                method: "POST".into(),
                url: "https://slack.com/api/chat.postMessage".into(),
            }),
            Event::ToolCompleted(ToolCompleted {
                tool: "slack.post_message".into(),
                connection_id: "01900000-0000-7000-8000-000000000020".into(),
                outcome: tool_call::ToolOutcome::Success,
                status: Some(200),
                latency_ms: 182,
                attempts: 1,
                response: None,
                error: None,
                undo: Some(tool_call::PlannedUndo {
                    method: crate::gateway::tools::HttpMethod::Post,
                    url: "https://slack.com/api/chat.delete".into(),
                    headers: [
                        ("accept".to_string(), "application/json".to_string()),
                        ("content-type".to_string(), "application/json".to_string()),
                    ]
                    .into_iter()
                    .collect(),
                    body: Some(
                        serde_json::json!({"channel": "C012AB3CD", "ts": "1700000000.000100"}),
                    ),
                    until: at + time::Duration::hours(24),
                }),
                recovered: false,
            }),
            Event::ApprovalRequested(ApprovalRequested {
                tool: "github.delete_repository".into(),
                connection_id: "01900000-0000-7000-8000-000000000020".into(),
                user_id: "user-42".into(),
                argument_fingerprint: format!("sha256:{}", "34".repeat(32)),
                expires_at: at,
            }),
            Event::ApprovalApproved(ApprovalDecided {
                tool: "github.delete_repository".into(),
                connection_id: "01900000-0000-7000-8000-000000000020".into(),
                note: Some("yes, archive is done".into()),
            }),
            Event::ApprovalDenied(ApprovalDecided {
                tool: "github.delete_repository".into(),
                connection_id: "01900000-0000-7000-8000-000000000020".into(),
                note: None,
            }),
            Event::ApprovalConsumed(ApprovalConsumed {
                tool: "github.delete_repository".into(),
                connection_id: "01900000-0000-7000-8000-000000000020".into(),
                tool_call_id: "01900000-0000-7000-8000-000000000031".into(),
            }),
            Event::ToolDefined(ToolDefined {
                revision: 1,
                definition: crate::gateway::tools::ToolDefinition {
                    name: "acme.get_invoice".into(),
                    provider: "acme".into(),
                    description: "Fetch one invoice".into(),
                    method: crate::gateway::tools::HttpMethod::Get,
                    base_url: "https://api.acme.example".into(),
                    path: "/v1/invoices/{invoice_id}".into(),
                    query: vec![],
                    headers: Default::default(),
                    parameters: serde_json::json!({
                        "type": "object",
                        "properties": {"invoice_id": {"type": "string"}},
                        "required": ["invoice_id"],
                        "additionalProperties": false
                    }),
                    required_scopes: vec!["invoices:read".into()],
                    risk: crate::gateway::tools::Risk::Read,
                    undo: None,
                },
            }),
            Event::ToolRemoved(ToolRemoved {
                name: "acme.get_invoice".into(),
            }),
            Event::GatewayDefined(GatewayDefined {
                revision: 1,
                name: "support agent".into(),
                servers: vec![gateway::GatewayServer {
                    auth_config_id: "01900000-0000-7000-8000-000000000011".into(),
                    tools: vec!["gmail.list_messages".into(), "gmail.get_message".into()],
                }],
                agent_key_ids: vec!["01900000-0000-7000-8000-000000000040".into()],
            }),
            Event::GatewayDeleted(GatewayDeleted {
                name: "support agent".into(),
            }),
            Event::CredentialReleased(CredentialReleased {
                connection_id: "01900000-0000-7000-8000-000000000020".into(),
                auth_config_id: "01900000-0000-7000-8000-000000000011".into(),
                user_id: "user-42".into(),
                fingerprint: format!("hmac-sha256:{}", "cd".repeat(32)),
                expires_at: Some(at),
            }),
            Event::ToolResponseStorageSet(ToolResponseStorageSet {
                store_tool_responses: true,
            }),
            Event::CheckpointCosigned(CheckpointCosigned {
                checkpoint_sequence: 2,
                tree_size: 180,
                witness_key: format!("witness.example/w1+a1b2c3d4+BA{}", "A".repeat(42)),
                witness_name: "witness.example/w1".into(),
                timestamp: 1_767_323_045,
                cosignature: format!("{}==", "A".repeat(102)),
            }),
            Event::IdempotencyClaimed(IdempotencyClaimed {
                key_hash: format!("sha256:{}", "9a".repeat(32)),
                request_fingerprint: format!("sha256:{}", "7b".repeat(32)),
                method: "POST".into(),
                route: "/v1/tools/execute".into(),
                claim: 1,
                lease_expires_at: at + time::Duration::minutes(2),
                expires_at: at + time::Duration::hours(24),
            }),
            Event::IdempotencyCompleted(IdempotencyCompleted {
                claim: 1,
                outcome: idempotency::IdempotencyOutcome::Recorded,
                status: 200,
                answer: Some(example_sealed()),
            }),
            Event::MemberInvited(MemberInvited {
                email: "ada@example.com".into(),
                role: Role::Admin,
                invite_hash: format!("sha256:{}", "ab".repeat(32)),
                expires_at: at,
            }),
            Event::MemberJoined(MemberJoined {
                invite_hash: format!("sha256:{}", "ab".repeat(32)),
                password: example_sealed(),
            }),
            Event::MemberSignedIn(MemberSignedIn {
                session_hash: format!("sha256:{}", "ef".repeat(32)),
                expires_at: at,
                second_factor_step: Some(59_000_000),
                sso_issuer: None,
            }),
            Event::MemberSignedOut(MemberSignedOut {
                session_hash: format!("sha256:{}", "ef".repeat(32)),
            }),
            Event::MemberRoleChanged(MemberRoleChanged { role: Role::Viewer }),
            Event::MemberRemoved(MemberRemoved {
                data_key_id: Some("dk_01900000000070008000000000000001".into()),
            }),
            Event::MemberSecondFactorEnrolled(MemberSecondFactorEnrolled {
                secret: example_sealed(),
                step: 58_999_999,
            }),
            Event::MemberSecondFactorReset(MemberSecondFactorReset {}),
            Event::SecondFactorRequirementSet(SecondFactorRequirementSet { required: true }),
            Event::ConnectionCredentialsSubmitted(CredentialsSubmitted {
                credentials: Some(example_sealed()),
            }),
            Event::AgentConnectFlowsSet(AgentConnectFlowsSet { any_user: true }),
            Event::TeamSsoConfigured(TeamSsoConfigured {
                issuer: "https://sso.example.com".into(),
                client_id: "authledger-console".into(),
                client_secret: example_sealed(),
                enabled: true,
            }),
            Event::MemberSsoLinked(MemberSsoLinked {
                issuer: "https://sso.example.com".into(),
                subject: "00u1a2b3c4".into(),
                invite_hash: Some(format!("sha256:{}", "ab".repeat(32))),
            }),
            Event::EndUserSignedIn(EndUserSignedIn {
                user_id: "user-42".into(),
                issuer: "https://idp.example.com/".into(),
                session_hash: format!("sha256:{}", "ab".repeat(32)),
                expires_at: at,
            }),
            Event::EndUserSignedOut(EndUserSignedOut {
                session_hash: format!("sha256:{}", "ab".repeat(32)),
            }),
            Event::ToolUndoRequested(ToolUndoRequested {
                tool: "slack.post_message".into(),
                connection_id: "01900000-0000-7000-8000-000000000020".into(),
                user_id: "user-42".into(),
                attempt: 1,
                method: "POST".into(),
                url: "https://slack.com/api/chat.delete".into(),
                lease_expires_at: at + time::Duration::minutes(2),
            }),
            Event::ToolUndone(ToolUndone {
                tool: "slack.post_message".into(),
                connection_id: "01900000-0000-7000-8000-000000000020".into(),
                attempt: 1,
                outcome: tool_call::ToolOutcome::Success,
                status: Some(200),
                latency_ms: 95,
                error: None,
            }),
            Event::WebhookCreated(WebhookCreated {
                url: "https://app.example.com/webhooks/authledger".into(),
                events: vec!["connection.".into(), "tool.completed".into()],
                enabled: true,
                secret: example_sealed(),
            }),
            Event::WebhookUpdated(WebhookUpdated {
                url: "https://app.example.com/webhooks/authledger".into(),
                events: vec!["connection.expired".into()],
                enabled: true,
            }),
            Event::WebhookSecretRotated(WebhookSecretRotated {
                secret: example_sealed(),
                previous_valid_until: at + time::Duration::hours(24),
            }),
            Event::WebhookDisabled(WebhookDisabled {
                position: 1842,
                attempts: 31,
                failing_since: at,
                reason: "HTTP 503".into(),
            }),
            Event::WebhookReplayRequested(WebhookReplayRequested {
                from_position: 1200,
            }),
            Event::WebhookDeleted(WebhookDeleted {
                data_key_id: "dk_01900000000070008000000000000001".into(),
            }),
            Event::AuthConfigTested(AuthConfigTested {
                auth_config_id: "01900000-0000-7000-8000-000000000002".into(),
                connector: "postgres".into(),
                outcome: connector_test::TestOutcome::Failed,
                class: Some("invalid_credentials".into()),
                duration_ms: 12,
            }),
            Event::CredentialIssued(CredentialIssued {
                connection_id: "01900000-0000-7000-8000-000000000003".into(),
                auth_config_id: "01900000-0000-7000-8000-000000000002".into(),
                user_id: "user-42".into(),
                driver: "postgres".into(),
                username: "al_dyn_0011223344556677".into(),
                grants: vec!["read".into()],
                ttl_seconds: 900,
                expires_at: at,
                password_fingerprint: format!("hmac-sha256:{}", "cd".repeat(32)),
            }),
            Event::CredentialDropStarted(CredentialDropStarted {
                connection_id: "01900000-0000-7000-8000-000000000003".into(),
                reason: dynamic_credential::DropReason::Expired,
                lease_until: at,
            }),
            Event::CredentialExpired(example_dropped(dynamic_credential::DropReason::Expired)),
            Event::CredentialRevoked(example_dropped(
                dynamic_credential::DropReason::ConnectionRevoked,
            )),
            Event::McpSessionStarted(McpSessionStarted {
                principal: "api_key:key_01900000000070008000000000000001".into(),
                client_name: Some("claude-code".into()),
                client_version: Some("2.1.0".into()),
                protocol_version: "2025-11-25".into(),
                expires_at: at,
            }),
        ]
    }

    /// Further forms of kinds `examples` shows once (validated by the same schema tests):
    /// a call that recovery completed after the service died before recording its outcome.
    pub fn variant_examples() -> Vec<Event> {
        let requested = Event::examples().into_iter().find_map(|e| match e {
            Event::ToolRequested(r) => Some(r),
            _ => None,
        });
        requested
            .map(|r| Event::ToolCompleted(ToolCompleted::recovered(&r)))
            .into_iter()
            .collect()
    }
}

fn example_tokens(at: time::OffsetDateTime) -> connection::OAuthTokens {
    connection::OAuthTokens {
        access_token: example_sealed(),
        refresh_token: Some(example_sealed()),
        token_type: "Bearer".into(),
        expires_at: Some(at),
    }
}

fn example_dropped(reason: dynamic_credential::DropReason) -> CredentialDropped {
    CredentialDropped {
        connection_id: "01900000-0000-7000-8000-000000000003".into(),
        username: "al_dyn_0011223344556677".into(),
        reason,
    }
}

fn example_sealed() -> auth_config::SealedSecret {
    auth_config::SealedSecret {
        data_key_id: "dk_01900000000070008000000000000001".into(),
        nonce: "AAAAAAAAAAAAAAAA".into(),
        ciphertext: "c2VhbGVk".into(),
        fingerprint: format!("hmac-sha256:{}", "cd".repeat(32)),
    }
}

fn example_oauth2() -> auth_config::OAuth2Settings {
    auth_config::OAuth2Settings {
        authorization_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
        token_url: "https://oauth2.googleapis.com/token".into(),
        revocation_url: Some("https://oauth2.googleapis.com/revoke".into()),
        client_id: "1234.apps.googleusercontent.com".into(),
        client_secret: example_sealed(),
        scopes: vec!["https://www.googleapis.com/auth/gmail.send".into()],
        client_auth_method: auth_config::ClientAuthMethod::ClientSecretPost,
        pkce: true,
        scope_separator: " ".into(),
        extra_authorize_params: [("access_type".to_string(), "offline".to_string())]
            .into_iter()
            .collect(),
        redirect_urls: vec!["https://app.example.com/connected".into()],
    }
}
