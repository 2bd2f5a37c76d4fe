//! The gateway: runs one tool call for an agent with the user's credential, which the agent
//! never sees. [`execute`] is the pipeline, one step per module; each refusal stops it:
//!
//! 1. `target`: the tool, the caller's gateway scope, the connection (the scoped token's, or
//!    the one the request names), usable now;
//! 2. `checks`: arguments, scopes (granted on the connection, held by the token), the
//!    token still usable;
//! 3. `step_up`: a destructive call needs an approval bound to exactly this call;
//! 4. `checks::spend`: the token's use and the approval are recorded against their versions;
//! 5. refresh before use (`commands::connections::credential_for_call`);
//! 6. `record::requested`: no `tool.requested` event, no call;
//! 7. `upstream`: the call (timeout; retries only idempotent methods);
//! 8. `scrub`: every form of the call's secrets out of the answer (body, content type,
//!    error), so neither the record nor the agent ever holds the injected credential;
//! 9. the answer, and `record::completed` right after it (`completion`: in its own task,
//!    with the compensating request when the tool declares an undo and the call succeeded,
//!    `undo::plan`). The answer waits for `tool.requested` to be durable, never for
//!    `tool.completed`; its position (`Authledger-Position`) covers `tool.requested`.
//!    Should the service die before `tool.completed` lands, `recover` completes the call as
//!    `unknown` once no attempt of it can still be running.
//!
//! `tools` is the tool catalog as data (pure); `workspace_tools` the workspace's own tools;
//! `undo` sends a call's compensating request through the same steps 5 to 8.

mod checks;
pub mod completion;
mod record;
pub mod recover;
pub mod scrub;
mod step_up;
mod target;
pub mod tools;
pub mod undo;
mod upstream;
pub mod workspace_tools;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::app::AppState;
use crate::commands::agents::AgentError;
use crate::commands::connections;
use crate::commands::Caller;
use crate::scoped_token::TokenClaims;
use scrub::Scrubber;
use upstream::{UpstreamFailure, UpstreamResponse};

pub use upstream::MAX_RESPONSE_BYTES;
pub use workspace_tools::{
    check_tool_fits, define_tool, find_tool, list_tools, list_tools_in, remove_tool, FoundTool,
};

/// Gateway deployment settings.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Per-attempt upstream timeout.
    pub upstream_timeout: Duration,
    /// Extra attempts for idempotent methods on timeouts, connection errors and 5xx.
    pub idempotent_retries: u32,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            upstream_timeout: Duration::from_secs(30),
            idempotent_retries: 2,
        }
    }
}

/// What the gateway runs on: its settings, its upstream client and the compiled workspace
/// tools.
pub struct Gateway {
    pub settings: GatewaySettings,
    /// Never follows redirects (they could carry the injected credential to another host);
    /// reaches only what the destination policy allows.
    pub http: crate::net::HttpClient,
    /// Workspace tools compiled once per stored definition.
    pub compiled_tools: Arc<tools::CompiledTools>,
    /// The `tool.completed` appends still on their way (after the answer).
    pub completions: completion::Completions,
}

impl Gateway {
    pub fn new(
        settings: GatewaySettings,
        destinations: &Arc<crate::net::Policy>,
    ) -> Result<Gateway, reqwest::Error> {
        Ok(Gateway {
            settings,
            http: upstream::client(destinations)?,
            compiled_tools: Arc::default(),
            completions: completion::Completions::default(),
        })
    }
}

/// How the agent authenticated: its API key, a scoped token (whose claims bound it), or
/// the end user's own token from the workspace's identity provider (MCP as the signed-in
/// person: only that person's connections).
#[derive(Debug, Clone)]
pub enum Authority {
    ApiKey,
    Token(Box<TokenClaims>),
    Person(Box<Person>),
}

/// An end user acting through an MCP client with their identity provider's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The end user (`sub`): the `user_id` of the connections they may use.
    pub user_id: String,
    /// The MCP client the token was issued to (`azp` / `client_id`), recorded with the call.
    pub client: Option<String>,
}

impl Authority {
    /// The scoped token's claims, if the agent presented one.
    pub fn token(&self) -> Option<&TokenClaims> {
        match self {
            Authority::Token(claims) => Some(claims),
            Authority::ApiKey | Authority::Person(_) => None,
        }
    }

    /// The one user this authority acts for (a scoped token's, or the person), if any.
    pub fn user(&self) -> Option<&str> {
        match self {
            Authority::Token(claims) => Some(&claims.sub),
            Authority::Person(person) => Some(&person.user_id),
            Authority::ApiKey => None,
        }
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteInput {
    pub tool: String,
    #[serde(default = "empty_object")]
    pub arguments: Value,
    pub connection_id: Option<String>,
    pub user_id: Option<String>,
    pub auth_config_id: Option<String>,
    pub approval_id: Option<String>,
    /// Set by the MCP endpoint of one gateway (never from the request body).
    #[serde(skip)]
    pub gateway_id: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// What the upstream answered.
#[derive(Debug)]
pub struct Executed {
    pub tool_call_id: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub latency_ms: u64,
}

/// Runs one tool call (the steps are listed in the module's documentation).
pub async fn execute(
    state: &AppState,
    caller: &Caller,
    authority: &Authority,
    input: ExecuteInput,
) -> Result<Executed, AgentError> {
    let phases = record::Phases::start(state);
    let (target, usable) = target::resolve(state, caller, authority, &input).await?;
    checks::check_call(state, authority, &target, &usable, &input.arguments).await?;
    let call = record::Call::new(&input.arguments);
    let approval_id = step_up::check(state, caller, (&target, &usable), &call, &input).await?;
    checks::spend(
        state,
        caller,
        authority,
        &call,
        approval_id.as_deref(),
        &target,
    )
    .await?;
    let (usable, credential) = connections::credential_for_call(
        state,
        &caller.workspace_id,
        &target.connection_id,
        &caller.actor(),
        usable,
    )
    .await?;
    let mut request = target
        .tool
        .build_request(None, &input.arguments)
        .map_err(|e| crate::commands::agents::invalid("arguments", e.to_string()))?;
    let requested = record::requested(&target, authority, &call, approval_id, &usable, &request);
    let phases = phases.next("prepare");
    // The scrubber's forms of the secret are made while `tool.requested` is being flushed
    // (the append yields once it has signed and handed the event to the log's writer).
    let (recorded, scrubber) = tokio::join!(
        record::record_requested(state, caller, &call, requested),
        async { Scrubber::for_credential(&credential) },
    );
    recorded?;
    let phases = phases.next("requested");
    request.inject(&credential);
    drop(credential);
    let (result, attempts) = upstream::call(state, &request).await;
    drop(request);
    let result = scrubbed(scrubber, result).await;
    let latency = phases.elapsed();
    let phases = phases.next("upstream");
    let planned = undo::plan(state, &target, &call, &input.arguments, &result);
    let (mut completed, answer) = record::completed(&target, &call, result, attempts, latency);
    completed.undo = planned;
    record::record_completed(state, caller, &call, completed, phases);
    answer
}

/// Bodies larger than this are scrubbed on a blocking thread (a 4 MiB body full of escapes
/// takes a few hundred milliseconds).
const SCRUB_INLINE_BYTES: usize = 64 * 1024;

/// Step 8: what the upstream answered without any form of the call's secrets: the body, the
/// content type (the headers relayed to the agent) and a failure's detail.
async fn scrubbed(
    scrubber: Scrubber,
    result: Result<UpstreamResponse, UpstreamFailure>,
) -> Result<UpstreamResponse, UpstreamFailure> {
    let large = result
        .as_ref()
        .is_ok_and(|r| r.body.len() > SCRUB_INLINE_BYTES);
    if !large {
        return scrub_answer(&scrubber, result);
    }
    tokio::task::spawn_blocking(move || scrub_answer(&scrubber, result))
        .await
        // Fail closed: an answer that could not be scrubbed is not relayed.
        .unwrap_or_else(|_| {
            Err(UpstreamFailure::Unreachable(
                "the answer could not be scrubbed".into(),
            ))
        })
}

fn scrub_answer(
    scrubber: &Scrubber,
    result: Result<UpstreamResponse, UpstreamFailure>,
) -> Result<UpstreamResponse, UpstreamFailure> {
    match result {
        Ok(mut resp) => {
            let cleaned = match scrubber.scrub(&resp.body) {
                Cow::Owned(body) => Some(body),
                Cow::Borrowed(_) => None,
            };
            if let Some(body) = cleaned {
                resp.body = body;
            }
            resp.content_type = resp
                .content_type
                .map(|c| scrubber.scrub_str(&c).into_owned());
            Ok(resp)
        }
        Err(UpstreamFailure::Unreachable(detail)) => Err(UpstreamFailure::Unreachable(
            scrubber.scrub_str(&detail).into_owned(),
        )),
        Err(UpstreamFailure::Timeout) => Err(UpstreamFailure::Timeout),
    }
}
