//! `authledger dump-log`: the raw log as JSON lines for an independent verifier
//! (`schemas/README.md` §6a gives the line format). Dumps what is there, damaged or not:
//! judging it is the verifier's job.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::envelope::open_envelope;
use super::log::{EventLog, LogError, RecordedEvent};

/// One line: `position`, `subject` (where the log filed the event), `aggregate_version`
/// (the indexed version, or null where the store keeps none), `event_id` (the signed
/// body's, or null when the envelope does not open), and `envelope` (the stored bytes as a
/// JSON string; null with `envelope_base64` instead when they are not UTF-8).
pub fn dump_line(e: &RecordedEvent, subject_prefix: &str) -> serde_json::Value {
    let event_id = open_envelope(&e.envelope)
        .ok()
        .map(|o| o.body.event_id.to_string());
    let mut line = serde_json::json!({
        "position": e.position,
        "subject": e.key.subject(subject_prefix),
        "aggregate_version": e.version,
        "event_id": event_id,
    });
    match std::str::from_utf8(&e.envelope) {
        Ok(text) => line["envelope"] = text.into(),
        Err(_) => {
            line["envelope"] = serde_json::Value::Null;
            line["envelope_base64"] = B64.encode(&e.envelope).into();
        }
    }
    line
}

/// Writes every event up to the head at the start, one JSON line each; returns how many.
pub async fn dump_log(
    log: Arc<dyn EventLog>,
    subject_prefix: &str,
    out: &mut impl std::io::Write,
) -> Result<u64, LogError> {
    let io = |e: std::io::Error| LogError::Backend(format!("cannot write the dump: {e}"));
    let head = log.head().await?;
    let mut next = 1;
    let mut n = 0;
    while next <= head {
        let page = log.read_from(next, 4096).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for e in page.iter().take_while(|e| e.position <= head) {
            serde_json::to_writer(&mut *out, &dump_line(e, subject_prefix))
                .map_err(|e| LogError::Backend(e.to_string()))?;
            out.write_all(b"\n").map_err(io)?;
            n += 1;
        }
        next = last + 1;
    }
    Ok(n)
}
