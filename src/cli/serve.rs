//! `authledger serve`: its settings (flags and environment) and the service started from them.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use authledger::api::ratelimit::{Limits, RateLimiter};
use authledger::app::AppState;
use authledger::config::StorageArgs;
use authledger::ops;

use super::print_json;

/// The email the first console admin signs in with, unless told otherwise.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@example.com";

/// Settings of `serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[arg(long, env = "AUTHLEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Sustained requests per second allowed per API key (per instance).
    #[arg(long, env = "AUTHLEDGER_RATE_LIMIT_PER_SEC", default_value_t = 50.0)]
    pub rate_limit_per_sec: f64,
    /// Requests an API key may burst above the sustained rate.
    #[arg(long, env = "AUTHLEDGER_RATE_LIMIT_BURST", default_value_t = 100.0)]
    pub rate_limit_burst: f64,
    /// Refused requests (each recorded as an `access.denied` event) per second per client
    /// address; beyond it (and the burst) the answer is 429 and nothing is recorded.
    #[arg(
        long,
        env = "AUTHLEDGER_DENIAL_RATE_LIMIT_PER_SEC",
        default_value_t = 10.0
    )]
    pub denial_rate_limit_per_sec: f64,
    #[arg(
        long,
        env = "AUTHLEDGER_DENIAL_RATE_LIMIT_BURST",
        default_value_t = 100.0
    )]
    pub denial_rate_limit_burst: f64,
    /// Sustained requests per second allowed per workspace (all its keys and end users
    /// together, per instance).
    #[arg(
        long,
        env = "AUTHLEDGER_WORKSPACE_RATE_LIMIT_PER_SEC",
        default_value_t = 500.0
    )]
    pub workspace_rate_limit_per_sec: f64,
    #[arg(
        long,
        env = "AUTHLEDGER_WORKSPACE_RATE_LIMIT_BURST",
        default_value_t = 1000.0
    )]
    pub workspace_rate_limit_burst: f64,
    /// Seconds a connection has to send a complete request head (from its opening, and
    /// between requests on a kept-alive connection); then it is closed.
    #[arg(
        long,
        env = "AUTHLEDGER_HEADER_READ_TIMEOUT_SECS",
        default_value_t = 10.0
    )]
    pub header_read_timeout_secs: f64,
    /// Seconds a request body may send nothing before the request is cut off.
    #[arg(long, env = "AUTHLEDGER_IDLE_TIMEOUT_SECS", default_value_t = 60.0)]
    pub idle_timeout_secs: f64,
    /// Open client connections at most; past it new ones wait until one closes.
    #[arg(long, env = "AUTHLEDGER_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// On SIGTERM (or Ctrl-C), seconds the requests already running may take to finish;
    /// new requests are answered 503 meanwhile, then the process exits (0).
    #[arg(long, env = "AUTHLEDGER_SHUTDOWN_GRACE_SECS", default_value_t = 30.0)]
    pub shutdown_grace_secs: f64,
    /// Allow loopback destinations (127.0.0.0/8, ::1, localhost), over https or plain
    /// http, for OAuth endpoints, JWKS, tool base URLs and connectors (development and
    /// tests only: in production a workspace admin could make the service call its own
    /// local endpoints).
    #[arg(long, env = "AUTHLEDGER_ALLOW_LOOPBACK_URLS")]
    pub allow_loopback_urls: bool,
    /// An exception to the outbound destination policy: a host name (its addresses are
    /// not checked) or an IP address or CIDR range (addresses in it are allowed even if
    /// private, link-local, ...). Repeatable; the environment variable takes a comma
    /// separated list. Never allows plain http off loopback.
    #[arg(
        long = "allow-destination",
        env = "AUTHLEDGER_ALLOW_DESTINATIONS",
        value_name = "HOST|CIDR",
        value_delimiter = ','
    )]
    pub allow_destinations: Vec<authledger::net::Allowed>,
    #[command(flatten)]
    pub readiness: ReadinessArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    /// Boxed: `serve`'s arguments are the CLI's largest variant already.
    #[command(flatten)]
    pub syslog: Box<SyslogArgs>,
}

/// The SIEM feed: every workspace's audit events to a syslog daemon (RFC 5424).
#[derive(clap::Args)]
pub struct SyslogArgs {
    /// Send the audit events to this syslog daemon: tls://host:port (RFC 5425; e.g. port
    /// 6514) or tcp://host:port (plain, to a loopback relay only). Judged by the
    /// destination policy like every outbound call. Unset: no feed.
    #[arg(long, env = "AUTHLEDGER_SYSLOG_URL", value_name = "URL")]
    pub syslog_url: Option<String>,
    /// PEM file of the CA(s) the daemon's certificate must chain to (default: the public
    /// web roots).
    #[arg(long, env = "AUTHLEDGER_SYSLOG_CA", value_name = "PEM")]
    pub syslog_ca: Option<std::path::PathBuf>,
    /// PEM certificate chain to present to the daemon (with --syslog-client-key).
    #[arg(long, env = "AUTHLEDGER_SYSLOG_CLIENT_CERT", value_name = "PEM")]
    pub syslog_client_cert: Option<std::path::PathBuf>,
    /// PEM private key of --syslog-client-cert.
    #[arg(long, env = "AUTHLEDGER_SYSLOG_CLIENT_KEY", value_name = "PEM")]
    pub syslog_client_key: Option<std::path::PathBuf>,
    /// Event kinds, or prefixes ending in '.' (access., connection.), to send; comma
    /// separated. Default: every kind.
    #[arg(
        long,
        env = "AUTHLEDGER_SYSLOG_EVENTS",
        value_name = "KIND|PREFIX.",
        value_delimiter = ','
    )]
    pub syslog_events: Vec<String>,
    /// The syslog facility of the messages (auth, authpriv, audit, daemon, user, local0 …
    /// local7); the severity follows the event (warning: refusals and failures; notice:
    /// revocations, deletions, role and setting changes; informational: the rest).
    #[arg(long, env = "AUTHLEDGER_SYSLOG_FACILITY", default_value = "authpriv")]
    pub syslog_facility: String,
    /// APP-NAME of the messages.
    #[arg(long, env = "AUTHLEDGER_SYSLOG_APP_NAME", default_value = "authledger")]
    pub syslog_app_name: String,
    /// HOSTNAME of the messages (default: this machine's name).
    #[arg(long, env = "AUTHLEDGER_SYSLOG_HOSTNAME")]
    pub syslog_hostname: Option<String>,
    /// On the feed's first run, send the whole log; by default it starts at the log's head
    /// then (`authledger export` gives the history). Later runs resume at the feed's cursor.
    #[arg(long, env = "AUTHLEDGER_SYSLOG_BACKFILL")]
    pub syslog_backfill: bool,
}

impl SyslogArgs {
    /// The sink, if a URL is set (checked now: a bad setting stops `serve`).
    fn sink(
        &self,
        destinations: &authledger::net::Policy,
    ) -> anyhow::Result<Option<authledger::siem::SyslogSink>> {
        let Some(url) = &self.syslog_url else {
            return Ok(None);
        };
        let options = authledger::siem::SyslogOptions {
            url: url.clone(),
            ca_file: self.syslog_ca.clone(),
            client_cert_file: self.syslog_client_cert.clone(),
            client_key_file: self.syslog_client_key.clone(),
            facility: self.syslog_facility.clone(),
            app_name: self.syslog_app_name.clone(),
            hostname: self.syslog_hostname.clone(),
            events: self.syslog_events.clone(),
            backfill: self.syslog_backfill,
        };
        Ok(Some(authledger::siem::SyslogSink::configure(
            &options,
            destinations,
        )?))
    }
}

#[derive(clap::Args)]
pub struct ReadinessArgs {
    /// Not ready while the projections are more than this many events behind the log.
    #[arg(long, env = "AUTHLEDGER_READINESS_MAX_LAG", default_value_t = 10_000)]
    pub readiness_max_lag: u64,
    /// Not ready while the projections have not advanced for this long (seconds) although
    /// the log is ahead of them.
    #[arg(
        long,
        env = "AUTHLEDGER_READINESS_MAX_STALL_SECS",
        default_value_t = 30
    )]
    pub readiness_max_stall_secs: u64,
}

#[derive(clap::Args)]
pub struct ConnectionArgs {
    /// The email the first console admin signs in with (fresh data dir only).
    #[arg(long, env = "AUTHLEDGER_ADMIN_EMAIL", default_value = DEFAULT_ADMIN_EMAIL)]
    pub admin_email: String,
    /// The base URL end users' browsers reach this service at; the OAuth redirect URI
    /// registered with providers is `{public_url}/v1/oauth/callback`. Default: http://<listen>.
    #[arg(long, env = "AUTHLEDGER_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// When proactive refresh runs (cron, six fields with seconds; "off" to disable).
    #[arg(long, env = "AUTHLEDGER_REFRESH_SCHEDULE", default_value = authledger::scheduler::DEFAULT_REFRESH_SCHEDULE)]
    pub refresh_schedule: String,
    /// Refresh access tokens this many seconds before they expire.
    #[arg(long, env = "AUTHLEDGER_REFRESH_BUFFER_SECS", default_value_t = 300)]
    pub refresh_buffer_secs: u64,
    /// Attempts per refresh on transient provider failures (5xx, timeouts).
    #[arg(long, env = "AUTHLEDGER_REFRESH_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub refresh_attempts: u32,
    /// First retry delay in milliseconds (doubles per attempt).
    #[arg(long, env = "AUTHLEDGER_REFRESH_RETRY_MS", default_value_t = 500)]
    pub refresh_retry_ms: u64,
    /// When signed checkpoints (Merkle roots over the log) are appended (cron, six fields;
    /// "off" to disable).
    #[arg(long, env = "AUTHLEDGER_CHECKPOINT_SCHEDULE", default_value = authledger::audit::checkpoints::DEFAULT_CHECKPOINT_SCHEDULE)]
    pub checkpoint_schedule: String,
    /// Timeout of each call to a provider, in seconds.
    #[arg(long, env = "AUTHLEDGER_PROVIDER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub provider_timeout_secs: u64,
    /// Timeout of each gateway call to an upstream API, in seconds.
    #[arg(long, env = "AUTHLEDGER_UPSTREAM_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub upstream_timeout_secs: u64,
    /// Extra attempts of an idempotent gateway call (GET, PUT, DELETE) after a timeout,
    /// connection error or 5xx; other methods are never retried.
    #[arg(long, env = "AUTHLEDGER_UPSTREAM_RETRIES", default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=5))]
    pub upstream_retries: u32,
    /// How long a request with an Idempotency-Key holds its key while it runs, in seconds:
    /// the request is cut off at this bound (answered and replayed as a 504 whose outcome
    /// is unknown), and a claim whose instance died frees the key after it. Keep it above
    /// the upstream timeout times the attempts.
    #[arg(long, env = "AUTHLEDGER_IDEMPOTENCY_LEASE_SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub idempotency_lease_secs: u64,
}

/// Starts the service with the settings given: limits, destination policy, storage.
pub async fn run(storage: &StorageArgs, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let limits = Limits {
        requests: RateLimiter::new(args.rate_limit_per_sec, args.rate_limit_burst),
        workspaces: RateLimiter::new(
            args.workspace_rate_limit_per_sec,
            args.workspace_rate_limit_burst,
        ),
        denials: RateLimiter::new(args.denial_rate_limit_per_sec, args.denial_rate_limit_burst),
        callbacks: RateLimiter::new(args.denial_rate_limit_per_sec, args.denial_rate_limit_burst),
    };
    let seconds = |s: f64, flag: &str| {
        std::time::Duration::try_from_secs_f64(s)
            .ok()
            .filter(|d| !d.is_zero())
            .with_context(|| format!("--{flag} must be a positive number of seconds"))
    };
    let connection_limits = authledger::server::ConnectionLimits {
        header_read_timeout: seconds(args.header_read_timeout_secs, "header-read-timeout-secs")?,
        idle_timeout: seconds(args.idle_timeout_secs, "idle-timeout-secs")?,
        max_connections: args.max_connections.max(1),
        shutdown_grace: seconds(args.shutdown_grace_secs, "shutdown-grace-secs")?,
    };
    let destinations =
        authledger::net::Policy::new(args.allow_loopback_urls, args.allow_destinations);
    let syslog = args.syslog.sink(&destinations)?;
    serve(
        storage,
        &args.listen,
        (limits, connection_limits),
        (destinations, syslog),
        (args.readiness, args.connections),
    )
    .await
}

async fn serve(
    storage: &StorageArgs,
    listen: &str,
    (limits, connection_limits): (Limits, authledger::server::ConnectionLimits),
    (destinations, syslog): (
        authledger::net::Policy,
        Option<authledger::siem::SyslogSink>,
    ),
    (readiness, connections): (ReadinessArgs, ConnectionArgs),
) -> anyhow::Result<ExitCode> {
    let refresh_schedule = match connections.refresh_schedule.as_str() {
        "off" => None,
        s => Some(authledger::scheduler::parse_schedule(s)?),
    };
    if let Some(url) = &connections.public_url {
        let parsed =
            reqwest::Url::parse(url).with_context(|| format!("invalid --public-url {url}"))?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https") && parsed.query().is_none(),
            "invalid --public-url {url}: must be an http(s) base URL without a query"
        );
    }
    let checkpoint_schedule = match connections.checkpoint_schedule.as_str() {
        "off" => None,
        s => Some(authledger::scheduler::parse_schedule(s)?),
    };
    let mut state = AppState::open(storage).await?;
    // Bind before writing anything, so a taken port leaves the log untouched.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let timeout = std::time::Duration::from_secs(connections.provider_timeout_secs);
    let settings = state
        .configure()
        .context("the service state is shared before it is configured")?;
    let destinations = Arc::new(destinations);
    settings.destinations = destinations.clone();
    settings.identity =
        Arc::new(authledger::identity::JwksCache::new().with_destinations(&destinations));
    settings.projection_health = Arc::new(authledger::projector::ProjectionHealth::new(
        authledger::projector::ReadinessBounds {
            max_lag: readiness.readiness_max_lag,
            max_stall: std::time::Duration::from_secs(readiness.readiness_max_stall_secs),
        },
        std::time::Instant::now(),
    ));
    let public_url = connections
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    settings.connections = authledger::commands::connections::ConnectionSettings {
        public_url: public_url.clone(),
        refresh_buffer: std::time::Duration::from_secs(connections.refresh_buffer_secs),
        refresh_attempts: connections.refresh_attempts,
        retry_base_delay: std::time::Duration::from_millis(connections.refresh_retry_ms),
        provider_timeout: timeout,
        refresh_schedule,
    };
    settings.oauth = Arc::new(authledger::oauth::OAuthClient::new(timeout, &destinations)?);
    settings.gateway = authledger::gateway::Gateway::new(
        authledger::gateway::GatewaySettings {
            upstream_timeout: std::time::Duration::from_secs(connections.upstream_timeout_secs),
            idempotent_retries: connections.upstream_retries,
        },
        &destinations,
    )?;
    settings.idempotency.lease = std::time::Duration::from_secs(connections.idempotency_lease_secs);
    if storage.embedded_log() && state.log.head().await? == 0 {
        let admin_email = connections.admin_email.as_str();
        let out = ops::bootstrap(&state.ledger, "default", admin_email).await?;
        let sign_up = format!("{public_url}{}", out.console_sign_up_path());
        print_json(&serde_json::json!({
            "workspace_id": out.workspace_id,
            "api_key_id": out.api_key_id,
            "admin_api_key": out.admin_api_key,
            "console_sign_up_url": sign_up,
            "console_admin_email": admin_email,
        }))?;
        // A log line like any other (JSON when the log is), so collectors can read stderr.
        tracing::info!(
            "Created workspace \"default\". Its admin API key above is shown only this once: \
             send it as `Authorization: Bearer <admin_api_key>`. \
             Open the console: {sign_up} (single use, valid 7 days) to set the password of \
             {admin_email}, the first console admin."
        );
    }
    tracing::info!("authledger listening on http://{addr}");
    let server = authledger::server::ServerSettings {
        limits: Arc::new(limits),
        checkpoint_schedule,
        connections: connection_limits,
        syslog,
    };
    authledger::server::serve(state, server, listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests within the grace period");
}
