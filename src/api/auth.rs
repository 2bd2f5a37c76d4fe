//! Authentication and authorization for every route, in one place: find the route in the
//! table, authenticate the bearer API key, check the role's permission, apply the rate
//! limit, and hand the handler a `Caller`. Every refusal (401, 403) is recorded as an
//! `access.denied` event.

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::sync::Arc;
use std::time::Duration;

use super::problem::Problem;
use super::ratelimit::{client_key, Limits, RateLimiter};
use super::routes::{self, role_allows, Permission, RouteSpec};
use crate::app::AppState;
use crate::commands::refusals::{self, Budget};
use crate::commands::{record_denial, Caller, EndUser};
use crate::domain::access::{AccessDenied, DenialReason};
use crate::domain::api_key::{hash_key, KEY_PREFIX};
use crate::domain::Role;
use crate::ledger::{Actor, ActorType};

pub use crate::domain::access::sanitize;

pub async fn authorize(
    State((state, limits)): State<(AppState, Arc<Limits>)>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &state)
        .await
        .ok();
    let mut req = Request::from_parts(parts, body);
    let method = req.method().as_str().to_string();
    let Some(path) = matched.as_ref().map(|m| m.as_str().to_string()) else {
        return next.run(req).await;
    };
    // A served route missing from the table would have no permission: refuse it.
    let Some(spec) = routes::find(&method, &path) else {
        tracing::error!(%method, %path, "route is not in the route table");
        return Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            None,
        )
        .into_response();
    };
    req.extensions_mut().insert(routes::Route(spec));
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| client_key(c.0.ip()));
    if spec.permission == Permission::Public {
        // The public OAuth callback records refused states: their own budget, charged only
        // by a refused state (a valid callback is never charged nor refused).
        if spec.id == routes::RouteId::OAuthCallback {
            let budget = refusal_budget(&limits, client.as_deref(), |l| &l.callbacks);
            return run_within(budget, req, next).await;
        }
        return next.run(req).await;
    }
    let param = |name: &str| {
        params.as_ref().and_then(|p| {
            p.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| sanitize(v, 128))
        })
    };
    let target_id = param("id");
    let denial = Denial {
        state: &state,
        limits: &limits,
        method: &method,
        route: &path,
        target_id: target_id.as_deref(),
        client,
        resource_metadata: super::protected_resource::metadata_url(
            &state.connections.public_url,
            spec.id,
            req.uri().path(),
        ),
    };
    // Approvals are decided by an admin key or by the end user's own JWT; the MCP server
    // acts as the end user whose JWT names the workspace (in its path, or the header).
    let presents_jwt = bearer_token(&req).is_some_and(|t| !t.starts_with(KEY_PREFIX));
    let mcp = matches!(spec.id, routes::RouteId::Mcp | routes::RouteId::McpGateway);
    let names_workspace = req.headers().contains_key(WORKSPACE_HEADER);
    if spec.permission == Permission::EndUser
        || (matches!(
            spec.permission,
            Permission::DecideApprovals | Permission::UndoToolCalls
        ) && presents_jwt)
        || (mcp && presents_jwt && names_workspace)
    {
        let workspace = param("workspace_id");
        return as_end_user(&state, &limits, &denial, workspace, req, next).await;
    }
    if spec.permission == Permission::CallTools && presents_jwt {
        return with_scoped_token(&state, &limits, &denial, req, next).await;
    }
    with_api_key(&state, &limits, &denial, spec, req, next).await
}

/// An end user, by a JWT of the workspace's identity provider; the workspace is the route's
/// (`{workspace_id}`) or else the one the `Authledger-Workspace` header names.
async fn as_end_user(
    state: &AppState,
    limits: &Arc<Limits>,
    denial: &Denial<'_>,
    workspace: Option<String>,
    mut req: Request,
    next: Next,
) -> Response {
    let deny =
        |workspace: Option<String>, actor: Actor, status: StatusCode, reason: DenialReason| {
            denial.refuse(workspace, actor, status, reason)
        };
    let bearer = bearer_token(&req).map(str::to_string);
    let workspace = workspace.or_else(|| {
        req.headers()
            .get(WORKSPACE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|w| sanitize(w, 128))
    });
    match authenticate_end_user(state, bearer, workspace).await {
        Ok((user, client)) => {
            let key = format!("user:{}:{}", user.workspace_id, user.user_id);
            if let Err(wait) = charge_budgets(limits, &key, &user.workspace_id) {
                return too_many(wait);
            }
            // What the MCP server acts as: this person, through the client the token names.
            let person = crate::gateway::Person {
                user_id: user.user_id.clone(),
                client,
            };
            req.extensions_mut()
                .insert(crate::gateway::Authority::Person(Box::new(person)));
            req.extensions_mut().insert(user);
            run_within(denial.budget(), req, next).await
        }
        Err(EndUserRefusal::ProviderDown(workspace, e)) => {
            // Audited and charged like a refusal: an unreachable provider must not become
            // a free way to make the service work (its failures are cached, see identity).
            tracing::warn!(error = %e, "cannot verify an end-user token");
            deny(
                Some(workspace),
                anonymous("end_user"),
                StatusCode::SERVICE_UNAVAILABLE,
                DenialReason::IdentityProviderUnavailable,
            )
            .await
        }
        Err(EndUserRefusal::Unavailable(e)) => {
            tracing::warn!(error = %e, "cannot verify an end-user token");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The identity provider cannot be reached",
                None,
            )
            .into_response()
        }
        Err(EndUserRefusal::Denied(workspace, reason)) => {
            deny(
                workspace,
                anonymous("end_user"),
                StatusCode::UNAUTHORIZED,
                reason,
            )
            .await
        }
    }
}

/// An agent with a scoped token (tool calls only).
async fn with_scoped_token(
    state: &AppState,
    limits: &Arc<Limits>,
    denial: &Denial<'_>,
    mut req: Request,
    next: Next,
) -> Response {
    let deny =
        |workspace: Option<String>, actor: Actor, status: StatusCode, reason: DenialReason| {
            denial.refuse(workspace, actor, status, reason)
        };
    let token = bearer_token(&req).map(str::to_string).unwrap_or_default();
    match authenticate_scoped_token(state, &token).await {
        Ok((caller, claims)) => {
            if let Err(wait) = charge_budgets(limits, &caller.api_key_id, &caller.workspace_id) {
                return too_many(wait);
            }
            req.extensions_mut().insert(caller);
            req.extensions_mut()
                .insert(crate::gateway::Authority::Token(Box::new(claims)));
            run_within(denial.budget(), req, next).await
        }
        Err(ScopedTokenRefusal::Unavailable) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Cannot authenticate right now",
            None,
        )
        .into_response(),
        Err(ScopedTokenRefusal::Denied(workspace, actor, reason)) => {
            deny(workspace, actor, StatusCode::UNAUTHORIZED, reason).await
        }
    }
}

/// A caller with an API key: known, live, unexpired, and its role allows the route.
async fn with_api_key(
    state: &AppState,
    limits: &Arc<Limits>,
    denial: &Denial<'_>,
    spec: &RouteSpec,
    mut req: Request,
    next: Next,
) -> Response {
    let deny =
        |workspace: Option<String>, actor: Actor, status: StatusCode, reason: DenialReason| {
            denial.refuse(workspace, actor, status, reason)
        };
    let Some(token) = bearer_token(&req).map(str::to_string) else {
        return deny(
            None,
            anonymous("anonymous"),
            StatusCode::UNAUTHORIZED,
            DenialReason::MissingCredentials,
        )
        .await;
    };
    // Only the visible prefix of a presented key is ever recorded.
    let token = token.as_str();
    let hint = sanitize(
        &token.chars().take(KEY_PREFIX.len() + 8).collect::<String>(),
        12,
    );
    if !token.starts_with(KEY_PREFIX) || token.len() > 128 {
        return deny(
            None,
            anonymous(&hint),
            StatusCode::UNAUTHORIZED,
            DenialReason::UnknownKey,
        )
        .await;
    }
    let row = match state.projections.api_key_by_hash(&hash_key(token)).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return deny(
                None,
                anonymous(&hint),
                StatusCode::UNAUTHORIZED,
                DenialReason::UnknownKey,
            )
            .await
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot authenticate: projections unavailable");
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Cannot authenticate right now",
                None,
            )
            .into_response();
        }
    };
    let key_actor = Actor {
        actor_type: ActorType::ApiKey,
        id: row.id.clone(),
    };
    if row.revoked_at.is_some() {
        return deny(
            Some(row.workspace_id),
            key_actor,
            StatusCode::UNAUTHORIZED,
            DenialReason::RevokedKey,
        )
        .await;
    }
    if let Some(expires) = row.expires_at.as_deref() {
        let expired =
            time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
                .map(|at| at <= state.clock.now())
                .unwrap_or(true);
        if expired {
            return deny(
                Some(row.workspace_id),
                key_actor,
                StatusCode::UNAUTHORIZED,
                DenialReason::ExpiredKey,
            )
            .await;
        }
    }
    let Some(role) = Role::parse(&row.role) else {
        tracing::error!(role = %row.role, "stored API key has an unknown role");
        return Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            None,
        )
        .into_response();
    };
    if !role_allows(role, spec.permission) {
        return deny(
            Some(row.workspace_id),
            key_actor,
            StatusCode::FORBIDDEN,
            DenialReason::RoleNotPermitted,
        )
        .await;
    }
    if let Err(wait) = charge_budgets(limits, &row.id, &row.workspace_id) {
        return too_many(wait);
    }
    req.extensions_mut().insert(Caller {
        workspace_id: row.workspace_id,
        api_key_id: row.id,
        role,
        actor_type: crate::ledger::ActorType::ApiKey,
    });
    run_within(denial.budget(), req, next).await
}

/// Charges an authorized request to its key's (or end user's) budget and its workspace's.
fn charge_budgets(limits: &Limits, key: &str, workspace: &str) -> Result<(), Duration> {
    limits.requests.check(key)?;
    limits.workspaces.check(&format!("ws:{workspace}"))
}

/// The refusal budget of `client` in the limiter `which` picks (none for an unknown peer).
fn refusal_budget(
    limits: &Arc<Limits>,
    client: Option<&str>,
    which: fn(&Limits) -> &RateLimiter,
) -> Budget {
    let limits = limits.clone();
    let client = client.map(str::to_string);
    Budget::new(Arc::new(move || match &client {
        Some(client) => which(&limits).check(client),
        None => Ok(()),
    }))
}

/// Runs a public page whose refusals are of a link (the hosted connect page: unknown, used or
/// expired links, forms without their CSRF token) within the client's budget of refused
/// callbacks, as the OAuth callback: past it nothing more is recorded and the answer is 429.
pub async fn within_link_budget(
    axum::extract::State(limits): axum::extract::State<Arc<Limits>>,
    req: Request,
    next: Next,
) -> Response {
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| client_key(c.0.ip()));
    let budget = refusal_budget(&limits, client.as_deref(), |l| &l.callbacks);
    run_within(budget, req, next).await
}

/// Runs the handler with the client's refusal budget: a refusal it records past the budget
/// is not recorded, and the answer is 429 like a refusal at the edge past it. Notes the
/// caller for the request log first.
async fn run_within(budget: Budget, req: Request, next: Next) -> Response {
    super::request_log::note_caller(&req);
    let resp = refusals::within(budget.clone(), next.run(req)).await;
    match budget.exceeded() {
        Some(wait) => too_many(wait),
        None => resp,
    }
}

/// A caller not (yet) known, named by a hint (never a secret).
fn anonymous(hint: &str) -> Actor {
    Actor {
        actor_type: ActorType::Anonymous,
        id: hint.to_string(),
    }
}

fn too_many(wait: Duration) -> Response {
    let mut resp = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many requests",
        None,
    )
    .into_response();
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// What a refusal records, and the response it gives.
struct Denial<'a> {
    state: &'a AppState,
    limits: &'a Arc<Limits>,
    method: &'a str,
    route: &'a str,
    target_id: Option<&'a str>,
    /// `ip:<address>` of the peer, for the refusal rate limit.
    client: Option<String>,
    /// Where an MCP client finds how to sign in (RFC 9728), named on its 401s.
    resource_metadata: Option<String>,
}

impl Denial<'_> {
    /// This client's budget for refusals recorded below the edge.
    fn budget(&self) -> Budget {
        refusal_budget(self.limits, self.client.as_deref(), |l| &l.denials)
    }

    async fn refuse(
        &self,
        workspace: Option<String>,
        actor: Actor,
        status: StatusCode,
        reason: DenialReason,
    ) -> Response {
        // Each refusal is an fsynced event: past its budget a client gets 429 and nothing
        // is written, so refusals cannot be used to flood the ledger.
        if let Some(client) = &self.client {
            if let Err(wait) = self.limits.denials.check(client) {
                return too_many(wait);
            }
        }
        let denial = AccessDenied {
            method: self.method.to_string(),
            route: self.route.to_string(),
            status: status.as_u16(),
            reason,
            target_id: self.target_id.map(str::to_string),
        };
        record_denial(self.state, workspace.as_deref(), actor, denial).await;
        let (kind, title) = match status {
            StatusCode::FORBIDDEN => ("forbidden", "This key's role may not do that"),
            StatusCode::SERVICE_UNAVAILABLE => {
                ("unavailable", "The identity provider cannot be reached")
            }
            _ => ("unauthorized", "Valid credentials are required"),
        };
        let mut resp = Problem::new(status, kind, title, None).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match &self.resource_metadata {
                Some(url) => HeaderValue::from_str(&format!("Bearer resource_metadata=\"{url}\""))
                    .unwrap_or(HeaderValue::from_static("Bearer")),
                None => HeaderValue::from_static("Bearer"),
            };
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        resp
    }
}

/// The header naming the workspace an end user belongs to.
pub const WORKSPACE_HEADER: &str = "authledger-workspace";

enum EndUserRefusal {
    Denied(Option<String>, DenialReason),
    /// The workspace's identity provider cannot be reached (or recently could not be).
    ProviderDown(String, String),
    /// This service cannot answer (its projections).
    Unavailable(String),
}

fn bearer_token(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

async fn authenticate_end_user(
    state: &AppState,
    token: Option<String>,
    workspace: Option<String>,
) -> Result<(EndUser, Option<String>), EndUserRefusal> {
    use crate::identity::{IdentityProvider, TokenError};
    let token = token.ok_or(EndUserRefusal::Denied(
        None,
        DenialReason::MissingCredentials,
    ))?;
    let workspace_id = workspace
        .filter(|w| !w.is_empty())
        .ok_or(EndUserRefusal::Denied(None, DenialReason::InvalidToken))?;
    let workspace = state
        .projections
        .workspace(&workspace_id)
        .await
        .map_err(|e| EndUserRefusal::Unavailable(e.to_string()))?
        .ok_or(EndUserRefusal::Denied(None, DenialReason::InvalidToken))?;
    let (Some(issuer), Some(audience), Some(jwks_url)) = (
        workspace.idp_issuer,
        workspace.idp_audience,
        workspace.idp_jwks_url,
    ) else {
        return Err(EndUserRefusal::Denied(
            Some(workspace_id),
            DenialReason::InvalidToken,
        ));
    };
    let idp = IdentityProvider {
        issuer,
        audience,
        jwks_url,
    };
    match state
        .identity
        .verify_person(&token, &idp, state.clock.now())
        .await
    {
        Ok(verified) => Ok((
            EndUser {
                workspace_id,
                user_id: verified.user_id,
            },
            verified.client,
        )),
        Err(TokenError::Expired) => Err(EndUserRefusal::Denied(
            Some(workspace_id),
            DenialReason::ExpiredToken,
        )),
        Err(TokenError::Invalid(_)) => Err(EndUserRefusal::Denied(
            Some(workspace_id),
            DenialReason::InvalidToken,
        )),
        Err(TokenError::ProviderUnavailable(e)) => {
            Err(EndUserRefusal::ProviderDown(workspace_id, e))
        }
    }
}

enum ScopedTokenRefusal {
    Denied(Option<String>, Actor, DenialReason),
    Unavailable,
}

/// A scoped token in place of an API key: signed by this ledger, unexpired, and issued to a
/// key that is still valid (revoking an agent's key ends its tokens too). Revocation and
/// uses of the token itself are checked when it is used.
async fn authenticate_scoped_token(
    state: &AppState,
    token: &str,
) -> Result<(Caller, crate::scoped_token::TokenClaims), ScopedTokenRefusal> {
    use crate::scoped_token::{verify, TokenFormatError};
    let anonymous = Actor {
        actor_type: ActorType::Anonymous,
        id: "scoped_token".into(),
    };
    let now = state.clock.now().unix_timestamp();
    let claims = match verify(
        token,
        &state.trusted_keys,
        &state.connections.public_url,
        now,
    ) {
        Ok(c) => c,
        Err(TokenFormatError::Expired {
            workspace_id,
            client_id,
        }) => {
            let key = Actor {
                actor_type: ActorType::ApiKey,
                id: client_id,
            };
            return Err(ScopedTokenRefusal::Denied(
                Some(workspace_id),
                key,
                DenialReason::ExpiredToken,
            ));
        }
        Err(_) => {
            return Err(ScopedTokenRefusal::Denied(
                None,
                anonymous,
                DenialReason::InvalidToken,
            ))
        }
    };
    let key_actor = Actor {
        actor_type: ActorType::ApiKey,
        id: claims.client_id.clone(),
    };
    let row = state
        .projections
        .api_key(&claims.workspace_id, &claims.client_id)
        .await
        .map_err(|_| ScopedTokenRefusal::Unavailable)?;
    let live = row.as_ref().is_some_and(|r| {
        r.revoked_at.is_none()
            && r.expires_at.as_deref().is_none_or(|e| {
                time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                    .is_ok_and(|at| at > state.clock.now())
            })
    });
    if !live {
        return Err(ScopedTokenRefusal::Denied(
            Some(claims.workspace_id),
            key_actor,
            DenialReason::RevokedKey,
        ));
    }
    let caller = Caller {
        workspace_id: claims.workspace_id.clone(),
        api_key_id: claims.client_id.clone(),
        role: Role::Agent,
        actor_type: crate::ledger::ActorType::ApiKey,
    };
    Ok((caller, claims))
}
