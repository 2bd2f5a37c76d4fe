//! Audit export, streamed: the audit view paged by position, each event's stored envelope
//! read from the log in ranges, written through a bounded channel so memory stays flat
//! whatever the size (the proof tree of the last checkpoint is the one part that grows
//! with the log: 32 bytes per position, about twice).
//!
//! JSONL follows `schemas/README.md` §7b (`authledger-export/1`); CSV is the flattened
//! audit view for spreadsheets.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::checkpoints::{checkpoints, leaves, StoredCheckpoint};
use super::merkle::{self, ProofTree};
use crate::app::AppState;
use crate::commands::CommandError;
use crate::ledger::envelope::PAYLOAD_TYPE;
use crate::ledger::LedgerError;
use crate::projector::store::{AuditEventRow, AuditFilter};

/// Rows per page of the audit view.
const PAGE: i64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

pub type Chunk = Result<Bytes, std::io::Error>;

fn log_error(e: crate::ledger::LogError) -> CommandError {
    CommandError::Ledger(LedgerError::Log(e))
}

/// Starts the export; the receiver yields the document in chunks. A failure midway ends
/// the stream with an error (a JSONL export then lacks its footer, so it cannot pass).
pub fn start(
    state: AppState,
    workspace_id: String,
    filter: AuditFilter,
    filters_given: BTreeMap<String, String>,
    format: Format,
) -> mpsc::Receiver<Chunk> {
    let (tx, rx) = mpsc::channel::<Chunk>(8);
    tokio::spawn(async move {
        let result = match format {
            Format::Jsonl => jsonl(&state, &workspace_id, filter, filters_given, &tx).await,
            Format::Csv => csv(&state, &workspace_id, filter, &tx).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "audit export failed midway");
            let _ = tx
                .send(Err(std::io::Error::other(format!("export failed: {e}"))))
                .await;
        }
    });
    rx
}

/// A closed receiver (the client went away) stops the export.
struct Gone;

impl From<Gone> for CommandError {
    fn from(_: Gone) -> Self {
        CommandError::Domain(crate::domain::DomainError::Rejected(
            "the client went away".into(),
        ))
    }
}

async fn send(tx: &mpsc::Sender<Chunk>, text: String) -> Result<(), Gone> {
    tx.send(Ok(Bytes::from(text))).await.map_err(|_| Gone)
}

async fn send_line(tx: &mpsc::Sender<Chunk>, v: &Value) -> Result<(), Gone> {
    send(tx, format!("{v}\n")).await
}

/// Pages the filtered audit view in ascending position, with each event's stored envelope.
struct Pages<'a> {
    state: &'a AppState,
    workspace_id: &'a str,
    filter: AuditFilter,
}

impl<'a> Pages<'a> {
    fn new(state: &'a AppState, workspace_id: &'a str, mut filter: AuditFilter) -> Self {
        filter.descending = false;
        filter.limit = PAGE;
        Pages {
            state,
            workspace_id,
            filter,
        }
    }

    async fn next(&mut self) -> Result<Option<Vec<(AuditEventRow, Bytes)>>, CommandError> {
        let rows = self
            .state
            .projections
            .audit_events(self.workspace_id, &self.filter)
            .await?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(None);
        };
        let from = u64::try_from(first.position).unwrap_or(0);
        let to = u64::try_from(last.position).unwrap_or(0);
        self.filter.cursor_position = Some(last.position);
        // One range read per page; the rows pick their envelopes out of it.
        let span = usize::try_from(to - from + 1).unwrap_or(usize::MAX);
        let mut envelopes: BTreeMap<u64, Bytes> = BTreeMap::new();
        let mut next = from;
        while next <= to {
            let got = self
                .state
                .log
                .read_from(next, span.min(4096))
                .await
                .map_err(log_error)?;
            let Some(end) = got.last().map(|r| r.position) else {
                break;
            };
            for r in got.into_iter().filter(|r| r.position <= to) {
                envelopes.insert(r.position, r.envelope);
            }
            next = end + 1;
        }
        let mut page = Vec::with_capacity(rows.len());
        for row in rows {
            let p = u64::try_from(row.position).unwrap_or(0);
            let env = envelopes
                .remove(&p)
                .ok_or(CommandError::Ledger(LedgerError::Corrupt {
                    position: p,
                    reason: "in the audit view but not in the log".into(),
                }))?;
            page.push((row, env));
        }
        Ok(Some(page))
    }
}

async fn jsonl(
    state: &AppState,
    workspace_id: &str,
    filter: AuditFilter,
    filters_given: BTreeMap<String, String>,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), CommandError> {
    send_line(tx, &jsonl_header(state, workspace_id, filters_given)).await?;
    // The last checkpoint's tree proves every exported event it covers.
    let all_checkpoints = checkpoints(state).await?;
    let exported = send_envelopes(tx, Pages::new(state, workspace_id, filter), "event").await?;
    for c in &all_checkpoints {
        send_checkpoint(state, tx, c.position).await?;
    }
    // Witness cosignatures of the checkpoints (§7c): ledger-wide like the checkpoints.
    let cosigned = AuditFilter {
        kind: Some("checkpoint.cosigned".into()),
        ..AuditFilter::default()
    };
    let cosignatures = send_envelopes(
        tx,
        Pages::new(state, crate::domain::SYSTEM_WORKSPACE, cosigned),
        "cosignature",
    )
    .await?;
    let proofs = match all_checkpoints.last() {
        Some(last) => send_inclusion_proofs(state, tx, last, &exported).await?,
        None => 0,
    };
    send_line(
        tx,
        &json!({
            "type": "footer",
            "events": exported.len(),
            "checkpoints": all_checkpoints.len(),
            "cosignatures": cosignatures.len(),
            "inclusion_proofs": proofs,
        }),
    )
    .await?;
    Ok(())
}

/// What the export is of, and the keys that signed it.
fn jsonl_header(
    state: &AppState,
    workspace_id: &str,
    filters_given: BTreeMap<String, String>,
) -> Value {
    let keys: Vec<Value> = state
        .trusted_keys
        .ids()
        .filter_map(|id| {
            state
                .trusted_keys
                .get(id)
                .map(|k| json!({ "key_id": id, "public_key": B64.encode(k.as_bytes()) }))
        })
        .collect();
    json!({
        "type": "header",
        "format": "authledger-export/1",
        "workspace_id": workspace_id,
        "filters": filters_given,
        "generated_at": crate::projector::plan::rfc3339(state.clock.now()),
        "payload_type": PAYLOAD_TYPE,
        "public_keys": keys,
    })
}

/// Streams every envelope `pages` yields as lines of `line_type`, a page per chunk;
/// returns their positions.
async fn send_envelopes(
    tx: &mpsc::Sender<Chunk>,
    mut pages: Pages<'_>,
    line_type: &str,
) -> Result<Vec<u64>, CommandError> {
    let mut positions = Vec::new();
    while let Some(page) = pages.next().await? {
        let mut text = String::new();
        for (row, envelope) in page {
            let envelope = String::from_utf8_lossy(&envelope).into_owned();
            text.push_str(
                &json!({ "type": line_type, "position": row.position, "envelope": envelope })
                    .to_string(),
            );
            text.push('\n');
            positions.push(u64::try_from(row.position).unwrap_or(0));
        }
        send(tx, text).await?;
    }
    Ok(positions)
}

async fn send_checkpoint(
    state: &AppState,
    tx: &mpsc::Sender<Chunk>,
    position: u64,
) -> Result<(), CommandError> {
    let got = state.log.read_from(position, 1).await.map_err(log_error)?;
    let env = got
        .into_iter()
        .find(|r| r.position == position)
        .map(|r| String::from_utf8_lossy(&r.envelope).into_owned())
        .unwrap_or_default();
    send_line(
        tx,
        &json!({ "type": "checkpoint", "position": position, "envelope": env }),
    )
    .await?;
    Ok(())
}

/// An inclusion proof against `last` for each exported position it covers; returns how
/// many were sent.
async fn send_inclusion_proofs(
    state: &AppState,
    tx: &mpsc::Sender<Chunk>,
    last: &StoredCheckpoint,
    exported: &[u64],
) -> Result<u64, CommandError> {
    let tree = ProofTree::new(leaves(state, last.checkpoint.tree_size).await?);
    let mut proofs = 0u64;
    for p in exported
        .iter()
        .copied()
        .filter(|p| *p <= last.checkpoint.tree_size)
    {
        let index = usize::try_from(p - 1).unwrap_or(usize::MAX);
        let proof = tree.inclusion_proof(index).unwrap_or_default();
        send_line(
            tx,
            &json!({
                "type": "inclusion",
                "position": p,
                "checkpoint_sequence": last.checkpoint.sequence,
                "tree_size": last.checkpoint.tree_size,
                "leaf_index": p - 1,
                "proof": proof.iter().map(merkle::to_hex).collect::<Vec<_>>(),
            }),
        )
        .await?;
        proofs += 1;
    }
    Ok(proofs)
}

const CSV_COLUMNS: [&str; 19] = [
    "position",
    "event_id",
    "occurred_at",
    "workspace_id",
    "kind",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "actor_type",
    "actor_id",
    "user_id",
    "auth_config_id",
    "connection_id",
    "token_id",
    "tool",
    "outcome",
    "reason",
    "key_id",
    "event_hash",
];

/// One CSV field (RFC 4180 quoting). Text a spreadsheet would run as a formula gets a
/// leading `'` (CSV injection), since reasons and ids come from callers and providers.
pub fn csv_field(v: &str) -> String {
    let guarded = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

fn csv_row(r: &AuditEventRow) -> String {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let fields = [
        r.position.to_string(),
        r.event_id.clone(),
        r.occurred_at.clone(),
        r.workspace_id.clone(),
        r.kind.clone(),
        r.aggregate_type.clone(),
        r.aggregate_id.clone(),
        r.aggregate_version.to_string(),
        r.actor_type.clone(),
        r.actor_id.clone(),
        o(&r.user_id),
        o(&r.auth_config_id),
        o(&r.connection_id),
        o(&r.token_id),
        o(&r.tool),
        o(&r.outcome),
        o(&r.reason),
        r.key_id.clone(),
        o(&r.event_hash),
    ];
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

async fn csv(
    state: &AppState,
    workspace_id: &str,
    mut filter: AuditFilter,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), CommandError> {
    send(tx, format!("{}\r\n", CSV_COLUMNS.join(","))).await?;
    filter.descending = false;
    filter.limit = PAGE;
    loop {
        let rows = state
            .projections
            .audit_events(workspace_id, &filter)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        filter.cursor_position = Some(last.position);
        let text: String = rows.iter().map(csv_row).collect();
        send(tx, text).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
    }
}
