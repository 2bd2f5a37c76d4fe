//! One audit event as an RFC 5424 syslog message, framed by octet counting (RFC 6587
//! §3.4.1). Pure: no I/O, no clock (the timestamp is the event's own time).
//!
//! ```text
//! 812 <84>1 2026-12-05T02:03:38.123456Z host authledger 4242 access.denied
//!     [authledger@32473 event_id="…" position="17" kind="access.denied" workspace="…"
//!      actor_type="api_key" actor_id="…" outcome="…"] BOM{"position":17,…}
//! ```
//!
//! - PRI: the facility the operator chose × 8 + the event's [`severity`].
//! - TIMESTAMP: the event's `occurred_at` in UTC with at most six fraction digits (the RFC's
//!   limit); HOSTNAME, APP-NAME: the deployment's (printable ASCII, cut to 255 and 48).
//! - MSGID: the event kind, cut to the RFC's 32 characters (the whole kind is in the
//!   structured data and the JSON).
//! - STRUCTURED-DATA: one element, SD-ID `authledger@32473` (32473 is the enterprise number
//!   RFC 5612 reserves for documentation: a private SD-ID's form), values escaped per
//!   §6.3.3 (`"`, `\` and `]` behind a backslash).
//! - MSG: a UTF-8 BOM, then the event's audit view as JSON (`AuditEventRow::view`, as a
//!   webhook sends it: `event_id`, `position`, `kind`, never a secret).

use crate::projector::store::AuditEventRow;

/// The SD-ID of the element every message carries.
pub const SD_ID: &str = "authledger@32473";
/// RFC 5424 §6.4: a MSG in UTF-8 starts with the byte order mark.
const BOM: &str = "\u{feff}";
const MAX_HOSTNAME: usize = 255;
const MAX_APP_NAME: usize = 48;
const MAX_MSGID: usize = 32;

/// A syslog facility (RFC 5424 §6.2.1), by the name operators write in syslog rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(u8);

impl Facility {
    pub const AUTHPRIV: Facility = Facility(10);

    pub fn code(self) -> u8 {
        self.0
    }
}

impl std::str::FromStr for Facility {
    type Err = String;

    fn from_str(s: &str) -> Result<Facility, String> {
        let code = match s.to_ascii_lowercase().as_str() {
            "user" => 1,
            "daemon" => 3,
            "auth" => 4,
            "authpriv" => 10,
            "audit" => 13,
            local if local.len() == 6 && local.starts_with("local") => {
                match local[5..].parse::<u8>() {
                    Ok(n) if n <= 7 => 16 + n,
                    _ => return Err(format!("unknown syslog facility {s:?}")),
                }
            }
            _ => {
                return Err(format!(
                    "unknown syslog facility {s:?} (auth, authpriv, audit, daemon, user, local0 … local7)"
                ))
            }
        };
        Ok(Facility(code))
    }
}

/// RFC 5424 severities the feed uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A refusal, a denial, a failure.
    Warning = 4,
    /// A change that matters to security: something revoked, deleted, disabled, expired,
    /// rotated, a role or a workspace setting changed.
    Notice = 5,
    /// Everything else.
    Informational = 6,
}

/// How loud an event is to a SIEM.
pub fn severity(kind: &str, outcome: Option<&str>) -> Severity {
    let last = kind.rsplit('.').next().unwrap_or(kind);
    let failed_outcome = matches!(
        outcome,
        Some("error" | "failed" | "failure" | "denied" | "refused")
    );
    let gave_up = kind == "webhook.disabled";
    if last == "denied" || last.ends_with("_failed") || gave_up || failed_outcome {
        return Severity::Warning;
    }
    let notable = [
        "revoked",
        "deleted",
        "disabled",
        "expired",
        "released",
        "needs_reconsent",
        "role_changed",
        "removed",
        "second_factor_reset",
    ];
    if notable.contains(&last)
        || last.ends_with("rotated")
        || kind.starts_with("workspace.")
        || kind.starts_with("signing_key.")
    {
        return Severity::Notice;
    }
    Severity::Informational
}

/// What every message of a deployment shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub facility: Facility,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
}

impl Origin {
    pub fn new(facility: Facility, hostname: &str, app_name: &str, procid: u32) -> Origin {
        Origin {
            facility,
            hostname: header_field(hostname, MAX_HOSTNAME),
            app_name: header_field(app_name, MAX_APP_NAME),
            procid: procid.to_string(),
        }
    }
}

/// A header field: printable ASCII without spaces (others become `_`), cut to `max`; the
/// NILVALUE `-` when nothing is left.
fn header_field(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if out.is_empty() {
        "-".into()
    } else {
        out
    }
}

/// An SD-PARAM value escaped per RFC 5424 §6.3.3.
fn sd_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The TIMESTAMP: UTC, microseconds at most; NILVALUE when the time does not parse.
fn timestamp(occurred_at: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(occurred_at, &Rfc3339) else {
        return "-".into();
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The syslog message (RFC 5424 §6) of one audit event.
pub fn message(origin: &Origin, event: &AuditEventRow) -> String {
    let pri = u16::from(origin.facility.code()) * 8
        + severity(&event.kind, event.outcome.as_deref()) as u16;
    let mut params = vec![
        ("event_id", event.event_id.clone()),
        ("position", event.position.to_string()),
        ("kind", event.kind.clone()),
        ("workspace", event.workspace_id.clone()),
        ("actor_type", event.actor_type.clone()),
        ("actor_id", event.actor_id.clone()),
    ];
    if let Some(outcome) = &event.outcome {
        params.push(("outcome", outcome.clone()));
    }
    let sd: String = params
        .iter()
        .map(|(name, value)| format!(" {name}=\"{}\"", sd_value(value)))
        .collect();
    let json = event.view().to_string();
    format!(
        "<{pri}>1 {} {} {} {} {} [{SD_ID}{sd}] {BOM}{json}",
        timestamp(&event.occurred_at),
        origin.hostname,
        origin.app_name,
        origin.procid,
        header_field(&event.kind, MAX_MSGID),
    )
}

/// The message as sent on the stream: its length in octets, a space, the message
/// (octet counting, RFC 6587 §3.4.1; RFC 5425 §4.3 frames TLS the same way).
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str) -> AuditEventRow {
        AuditEventRow {
            position: 17,
            event_id: "0193a3c4-0000-7000-8000-000000000001".into(),
            workspace_id: "ws_1".into(),
            aggregate_type: "access".into(),
            aggregate_id: "a1".into(),
            aggregate_version: 1,
            kind: kind.into(),
            actor_type: "api_key".into(),
            actor_id: "key \"quoted\" ]\\".into(),
            occurred_at: "2026-12-05T02:03:38.123456789Z".into(),
            key_id: "k1".into(),
            event_hash: Some("sha256:ab".into()),
            user_id: None,
            auth_config_id: None,
            connection_id: None,
            token_id: None,
            tool: None,
            outcome: None,
            reason: Some("no_permission".into()),
        }
    }

    fn origin() -> Origin {
        Origin::new(Facility::AUTHPRIV, "host one", "authledger", 4242)
    }

    #[test]
    fn a_message_has_the_rfc_5424_header_sd_and_the_audit_view() {
        let m = message(&origin(), &event("access.denied"));
        // authpriv (10) × 8 + warning (4) = 84.
        let expected_head =
            "<84>1 2026-12-05T02:03:38.123456Z host_one authledger 4242 access.denied \
            [authledger@32473 event_id=\"0193a3c4-0000-7000-8000-000000000001\" position=\"17\" \
            kind=\"access.denied\" workspace=\"ws_1\" actor_type=\"api_key\" \
            actor_id=\"key \\\"quoted\\\" \\]\\\\\"] \u{feff}";
        assert!(m.starts_with(expected_head), "{m}");
        let json: serde_json::Value =
            serde_json::from_str(&m[expected_head.len()..]).expect("the MSG is JSON");
        assert_eq!(json, event("access.denied").view());
        assert_eq!(json["event_id"], "0193a3c4-0000-7000-8000-000000000001");
        assert_eq!(json["position"], 17);
    }

    #[test]
    fn a_long_kind_is_cut_to_32_in_msgid_and_whole_in_the_sd() {
        let kind = "workspace.identity_provider_configured";
        let m = message(&origin(), &event(kind));
        let fields: Vec<&str> = m.splitn(7, ' ').collect();
        assert_eq!(fields[5], &kind[..32]);
        assert!(m.contains(&format!("kind=\"{kind}\"")));
    }

    #[test]
    fn severities_follow_the_event() {
        let check = |kind: &str, outcome: Option<&str>, want: Severity| {
            assert_eq!(severity(kind, outcome), want, "{kind} {outcome:?}");
        };
        check("access.denied", None, Severity::Warning);
        check("approval.denied", None, Severity::Warning);
        check("connection.refresh_failed", None, Severity::Warning);
        check("webhook.disabled", None, Severity::Warning);
        check("tool.completed", Some("error"), Severity::Warning);
        check("api_key.revoked", None, Severity::Notice);
        check("connection.expired", None, Severity::Notice);
        check("signing_key.rotated", None, Severity::Notice);
        check("auth_config.client_secret_rotated", None, Severity::Notice);
        check("member.role_changed", None, Severity::Notice);
        check("workspace.created", None, Severity::Notice);
        check("tool.completed", Some("success"), Severity::Informational);
        check("token.issued", None, Severity::Informational);
        check("audit.queried", None, Severity::Informational);
    }

    #[test]
    fn facilities_by_name() {
        assert_eq!("authpriv".parse::<Facility>().map(Facility::code), Ok(10));
        assert_eq!("LOCAL0".parse::<Facility>().map(Facility::code), Ok(16));
        assert_eq!("local7".parse::<Facility>().map(Facility::code), Ok(23));
        assert!("local8".parse::<Facility>().is_err());
        assert!("kern".parse::<Facility>().is_err());
    }

    #[test]
    fn frames_count_octets_not_characters() {
        let m = message(&origin(), &event("token.issued"));
        let framed = frame(&m);
        let (len, rest) = std::str::from_utf8(&framed)
            .expect("utf-8")
            .split_once(' ')
            .expect("a space after the length");
        assert_eq!(len.parse::<usize>(), Ok(rest.len()));
        // The BOM is three octets and one character.
        assert_eq!(rest.len(), m.chars().count() + 2);
        // informational (6) + authpriv (80)
        assert!(rest.starts_with("<86>1 "));
    }

    #[test]
    fn header_fields_are_printable_ascii_or_nil() {
        assert_eq!(header_field("", 48), "-");
        assert_eq!(header_field("a b\u{e9}", 48), "a_b_");
        assert_eq!(header_field(&"x".repeat(300), 255).len(), 255);
        assert_eq!(timestamp("not a time"), "-");
        assert_eq!(
            timestamp("2026-12-05T03:03:38+01:00"),
            "2026-12-05T02:03:38.000000Z"
        );
    }
}
