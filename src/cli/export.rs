//! `authledger export`: a workspace's audit history as a file, or followed as a feed.

use std::process::ExitCode;

use authledger::app::AppState;
use authledger::config::StorageArgs;

/// Settings of `export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub workspace: String,
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
    pub format: String,
    /// RFC 3339 lower bound (inclusive).
    #[arg(long)]
    pub from: Option<String>,
    /// RFC 3339 upper bound (exclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// An event kind, or a prefix ending in '.' (e.g. `connection.`).
    #[arg(long)]
    pub kind: Option<String>,
    #[arg(long)]
    pub actor: Option<String>,
    #[arg(long)]
    pub user_id: Option<String>,
    #[arg(long)]
    pub auth_config_id: Option<String>,
    #[arg(long)]
    pub connection_id: Option<String>,
    #[arg(long)]
    pub outcome: Option<String>,
    /// Keep streaming the workspace's events as they are appended (a SIEM feed): each
    /// line an export event line, the envelope as signed; new events only, unless
    /// `--from-position`. Only `--kind` filters it.
    #[arg(long, conflicts_with_all = ["from", "to", "actor", "user_id", "auth_config_id", "connection_id", "outcome"])]
    pub follow: bool,
    /// With `--follow`: start at this log position (resume after the last line seen).
    #[arg(long, requires = "follow", value_name = "POSITION")]
    pub from_position: Option<u64>,
}

/// Runs `export` (or `export --follow`) with its settings.
pub async fn run(storage: &StorageArgs, args: ExportArgs) -> anyhow::Result<ExitCode> {
    if args.follow {
        anyhow::ensure!(args.format == "jsonl", "--follow streams JSONL only");
        return follow_export(storage, &args.workspace, args.kind, args.from_position).await;
    }
    let q = authledger::api::audit::ExportQuery {
        format: Some(args.format),
        from: args.from,
        to: args.to,
        kind: args.kind,
        actor: args.actor,
        user_id: args.user_id,
        auth_config_id: args.auth_config_id,
        connection_id: args.connection_id,
        outcome: args.outcome,
        min_position: None,
    };
    export(storage, &args.workspace, &q).await
}

/// The service state with its projections brought up to the log (the service may not be
/// running), once the workspace is known to exist.
async fn open_caught_up(storage: &StorageArgs, workspace: &str) -> anyhow::Result<AppState> {
    let state = AppState::open(storage).await?;
    authledger::projector::Projector::new(
        state.projections.clone(),
        state.log.clone(),
        state.metrics.clone(),
    )
    .catch_up()
    .await?;
    anyhow::ensure!(
        state.projections.workspace(workspace).await?.is_some(),
        "no workspace {workspace}"
    );
    Ok(state)
}

async fn export(
    storage: &StorageArgs,
    workspace: &str,
    q: &authledger::api::audit::ExportQuery,
) -> anyhow::Result<ExitCode> {
    use tokio::io::AsyncWriteExt as _;
    let (format, filter, given) =
        authledger::api::audit::export_request(q).map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = open_caught_up(storage, workspace).await?;
    authledger::commands::audit::record_query_by(
        &state,
        workspace,
        &authledger::ledger::Actor::system("cli-export"),
        "/cli/audit/export",
        given.clone(),
    )
    .await?;
    let mut rx = authledger::audit::export::start(
        state.clone(),
        workspace.to_string(),
        filter,
        given,
        format,
    );
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    while let Some(chunk) = rx.recv().await {
        out.write_all(&chunk?).await?;
    }
    out.flush().await?;
    Ok(ExitCode::SUCCESS)
}

/// `export --follow`: the workspace's events from the log as they are appended, one line
/// each, flushed at once; recorded as `audit.queried` first.
async fn follow_export(
    storage: &StorageArgs,
    workspace: &str,
    kind: Option<String>,
    from_position: Option<u64>,
) -> anyhow::Result<ExitCode> {
    use futures::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    let state = open_caught_up(storage, workspace).await?;
    let from = match from_position {
        Some(p) => p,
        None => state.log.head().await? + 1,
    };
    let mut given = std::collections::BTreeMap::new();
    given.insert("follow".to_string(), "true".to_string());
    given.insert("from_position".to_string(), from.to_string());
    if let Some(k) = &kind {
        given.insert("kind".to_string(), k.clone());
    }
    authledger::commands::audit::record_query_by(
        &state,
        workspace,
        &authledger::ledger::Actor::system("cli-export"),
        "/cli/audit/export",
        given,
    )
    .await?;
    let filter = authledger::audit::follow::FollowFilter {
        workspace_id: workspace.to_string(),
        kind,
    };
    let mut lines = authledger::audit::follow::follow(&state, filter, from).await?;
    let mut out = tokio::io::stdout();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            line = lines.next() => match line {
                Some(line) => {
                    out.write_all(line?.as_bytes()).await?;
                    out.flush().await?;
                }
                None => return Ok(ExitCode::SUCCESS),
            },
            _ = term.recv() => return Ok(ExitCode::SUCCESS),
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}
