//! Phase 0b: the CPU cost of `verify_log`'s checks per event with no I/O, on one thread,
//! taken apart: opening the envelope (JSON, base64, body rules, sha256), the signature
//! (`signature::verify`: SHA-512 of `R || A || PAE`, the group equation), and the whole
//! `Verifier` on 1 and 2 threads over the same in-memory events.

use std::time::Instant;

use authledger::ledger::envelope::{open_envelope, pae};
use authledger::ledger::signature;
use authledger::ledger::verify::Verifier;
use authledger::ledger::writer::seal_event;
use authledger::ledger::{KeyRing, RecordedEvent, Signer, PAYLOAD_TYPE};

use super::{actor, agg_key, cpu_seconds, padded_event, Row};

/// `n` chained events over 64 aggregates, as a log would return them.
fn events(signer: &Signer, n: u64, pad: usize) -> anyhow::Result<Vec<RecordedEvent>> {
    let mut tails: Vec<(u64, Option<String>)> = vec![(0, None); 64];
    let event = padded_event(pad);
    let mut out = Vec::with_capacity(n as usize);
    for position in 1..=n {
        let agg = (position % 64) as usize;
        let key = agg_key(0, agg as u64)?;
        let (version, prev) = tails[agg].clone();
        let now = time::OffsetDateTime::now_utc();
        let (signed, hash) = seal_event(signer, &key, version, prev, &actor(), &event, now)?;
        tails[agg] = (version + 1, Some(hash));
        out.push(RecordedEvent {
            position,
            key,
            version: None,
            envelope: signed.envelope,
            sealed: Default::default(),
        });
    }
    Ok(out)
}

/// Wall and CPU (this process, user + system) microseconds per event since a start.
struct Span {
    wall: Instant,
    cpu: f64,
}

impl Span {
    fn start() -> Span {
        Span {
            wall: Instant::now(),
            cpu: cpu_seconds("self").unwrap_or(0.0),
        }
    }

    /// (wall µs, CPU µs) per event.
    fn per_event(&self, n: usize) -> (f64, f64) {
        let cpu = cpu_seconds("self").unwrap_or(0.0) - self.cpu;
        let n = n.max(1) as f64;
        (self.wall.elapsed().as_secs_f64() * 1e6 / n, cpu * 1e6 / n)
    }
}

/// On a shared machine the wall time per event grows with the load, the CPU time much
/// less: the note gives both (CPU first), so runs on a busy machine stay comparable.
pub fn run(signer: &Signer, ring: &KeyRing, n: u64, pad: usize) -> anyhow::Result<Row> {
    let log = events(signer, n, pad)?;
    let key = signer.public_key();

    let span = Span::start();
    let mut opened = Vec::with_capacity(log.len());
    for rec in &log {
        opened.push(open_envelope(&rec.envelope)?);
    }
    let (open_wall, open_cpu) = span.per_event(log.len());

    let span = Span::start();
    for o in &opened {
        let message = pae(PAYLOAD_TYPE, &o.body_bytes);
        signature::verify(&key, &message, &o.signatures[0].1)?;
    }
    let (sig_wall, sig_cpu) = span.per_event(log.len());

    let mut whole = Vec::new();
    for threads in [1, 2] {
        let mut verifier = Verifier::with_threads(ring.clone(), threads);
        let span = Span::start();
        for page in log.chunks(4096) {
            verifier
                .check_batch(page)
                .map_err(|f| anyhow::anyhow!("verify: {f:?}"))?;
        }
        whole.push(span.per_event(log.len()));
    }
    let (one_wall, one_cpu) = whole[0];
    let (two_wall, two_cpu) = whole[1];
    Ok(Row {
        phase: "0b. `verify_log`'s checks alone (no I/O), 2 threads".into(),
        events: n,
        rate: 1e6 / two_wall,
        note: format!(
            "CPU/event (wall/event): 2 threads {two_cpu:.1} µs ({two_wall:.1} µs); one thread \
             {one_cpu:.1} µs ({one_wall:.1} µs), of which opening the envelope (JSON, base64, \
             body rules, sha256) {open_cpu:.1} µs ({open_wall:.1} µs) and the signature \
             (`signature::verify`) {sig_cpu:.1} µs ({sig_wall:.1} µs)"
        ),
    })
}
