//! Idempotency keys: one aggregate per (workspace, caller, key), so the append's expected
//! version makes a claim exclusive across instances. A claim records the request's
//! fingerprint and a lease; the outcome records the answer (sealed) for replay, or frees
//! the key when the request wrote nothing. Time arrives in commands.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::auth_config::SealedSecret;
use super::{Aggregate, DomainError, Event};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyClaimed {
    /// `sha256:<hex>` of the key as the client sent it (never the key).
    pub key_hash: String,
    /// `sha256:<hex>` of the request: method, path, query and body.
    pub request_fingerprint: String,
    pub method: String,
    /// The route (as in the route table) the request was for.
    pub route: String,
    /// 1 for the first claim of this key; a claim after an abandoned or expired one counts up.
    pub claim: u32,
    /// Until then another request with this key is refused as in progress; after it, a
    /// claim whose instance died no longer holds the key.
    #[serde(with = "time::serde::rfc3339")]
    pub lease_expires_at: OffsetDateTime,
    /// Until then the key answers with this claim's outcome (24 hours).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdempotencyOutcome {
    /// The answer is recorded (sealed) and replayed to a retry.
    Recorded,
    /// The request wrote nothing: the key is free again and a retry runs afresh.
    Released,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyCompleted {
    /// Which claim this outcome ends.
    pub claim: u32,
    pub outcome: IdempotencyOutcome,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The answer (status, content type, body) sealed under the record's own data key,
    /// shredded after `expires_at`; absent when released.
    pub answer: Option<SealedSecret>,
}

/// What a request with this key meets now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// No live claim: the request may claim the key (as claim number `next`).
    Free { next: u32 },
    /// A live claim for another request.
    Mismatch,
    /// The same request is still running elsewhere, until at most `lease_expires_at`.
    Running { lease_expires_at: OffsetDateTime },
    /// The same request's recorded answer.
    Replay(IdempotencyCompleted),
}

#[derive(Debug, Default, Clone)]
pub struct IdempotencyRecord {
    pub claim: Option<IdempotencyClaimed>,
    /// The outcome of `claim`, once there is one.
    pub outcome: Option<IdempotencyCompleted>,
}

pub enum IdempotencyCommand {
    Claim {
        claimed: IdempotencyClaimed,
        now: OffsetDateTime,
    },
    Complete(IdempotencyCompleted),
}

impl IdempotencyRecord {
    /// Pure: what a request with `fingerprint` meets at `now`.
    pub fn judge(&self, fingerprint: &str, now: OffsetDateTime) -> Judgement {
        let Some(claim) = &self.claim else {
            return Judgement::Free { next: 1 };
        };
        let free = Judgement::Free {
            next: claim.claim + 1,
        };
        if now >= claim.expires_at {
            return free;
        }
        match &self.outcome {
            Some(done) if done.outcome == IdempotencyOutcome::Released => free,
            _ if claim.request_fingerprint != fingerprint => Judgement::Mismatch,
            Some(done) => Judgement::Replay(done.clone()),
            None if now < claim.lease_expires_at => Judgement::Running {
                lease_expires_at: claim.lease_expires_at,
            },
            // The claiming instance died (or overran its lease): the key is free again.
            None => free,
        }
    }
}

impl Aggregate for IdempotencyRecord {
    const TYPE: &'static str = "idempotency";
    type Command = IdempotencyCommand;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::IdempotencyClaimed(e) => {
                self.claim = Some(e.clone());
                self.outcome = None;
            }
            Event::IdempotencyCompleted(e) => self.outcome = Some(e.clone()),
            _ => {}
        }
    }

    fn decide(&self, command: &IdempotencyCommand) -> Result<Event, DomainError> {
        match command {
            IdempotencyCommand::Claim { claimed, now } => {
                match self.judge(&claimed.request_fingerprint, *now) {
                    Judgement::Free { next } if next == claimed.claim => {
                        Ok(Event::IdempotencyClaimed(claimed.clone()))
                    }
                    _ => Err(DomainError::Rejected(
                        "the idempotency key is not free".into(),
                    )),
                }
            }
            IdempotencyCommand::Complete(completed) => {
                let ours = self
                    .claim
                    .as_ref()
                    .is_some_and(|c| c.claim == completed.claim);
                if !ours || self.outcome.is_some() {
                    return Err(DomainError::Rejected(
                        "the idempotency claim was taken over or has ended".into(),
                    ));
                }
                Ok(Event::IdempotencyCompleted(completed.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    const T0: OffsetDateTime = datetime!(2026-01-02 03:00:00 UTC);

    fn claimed(claim: u32, fingerprint: &str, at: OffsetDateTime) -> IdempotencyClaimed {
        IdempotencyClaimed {
            key_hash: format!("sha256:{}", "ab".repeat(32)),
            request_fingerprint: fingerprint.into(),
            method: "POST".into(),
            route: "/v1/tools/execute".into(),
            claim,
            lease_expires_at: at + Duration::minutes(2),
            expires_at: at + Duration::hours(24),
        }
    }

    fn completed(claim: u32, outcome: IdempotencyOutcome) -> IdempotencyCompleted {
        IdempotencyCompleted {
            claim,
            outcome,
            status: 200,
            answer: None,
        }
    }

    fn record(events: &[Event]) -> IdempotencyRecord {
        let mut r = IdempotencyRecord::default();
        for e in events {
            r.apply(e);
        }
        r
    }

    #[test]
    fn a_fresh_key_is_free_and_a_running_claim_holds_it_until_its_lease() {
        let r = IdempotencyRecord::default();
        assert_eq!(r.judge("f", T0), Judgement::Free { next: 1 });
        let r = record(&[Event::IdempotencyClaimed(claimed(1, "f", T0))]);
        assert!(matches!(
            r.judge("f", T0 + Duration::seconds(5)),
            Judgement::Running { .. }
        ));
        assert_eq!(r.judge("g", T0), Judgement::Mismatch);
        // The claiming instance died: after the lease the key is free, as claim 2.
        assert_eq!(
            r.judge("f", T0 + Duration::minutes(3)),
            Judgement::Free { next: 2 }
        );
    }

    #[test]
    fn a_recorded_answer_is_replayed_for_24_hours_to_the_same_request_only() {
        let done = completed(1, IdempotencyOutcome::Recorded);
        let r = record(&[
            Event::IdempotencyClaimed(claimed(1, "f", T0)),
            Event::IdempotencyCompleted(done.clone()),
        ]);
        assert_eq!(
            r.judge("f", T0 + Duration::hours(1)),
            Judgement::Replay(done)
        );
        assert_eq!(r.judge("g", T0 + Duration::hours(1)), Judgement::Mismatch);
        assert_eq!(
            r.judge("g", T0 + Duration::hours(24)),
            Judgement::Free { next: 2 }
        );
    }

    #[test]
    fn a_released_key_is_free_at_once() {
        let r = record(&[
            Event::IdempotencyClaimed(claimed(1, "f", T0)),
            Event::IdempotencyCompleted(completed(1, IdempotencyOutcome::Released)),
        ]);
        assert_eq!(r.judge("g", T0), Judgement::Free { next: 2 });
    }

    #[test]
    fn only_one_claim_wins_and_only_its_holder_completes() {
        let first = record(&[Event::IdempotencyClaimed(claimed(1, "f", T0))]);
        let again = IdempotencyCommand::Claim {
            claimed: claimed(1, "f", T0),
            now: T0,
        };
        assert!(first.decide(&again).is_err());
        let stale = IdempotencyCommand::Complete(completed(2, IdempotencyOutcome::Recorded));
        assert!(first.decide(&stale).is_err());
        let mine = IdempotencyCommand::Complete(completed(1, IdempotencyOutcome::Recorded));
        assert!(first.decide(&mine).is_ok());
        // A takeover after the lease ends the first claim: its late outcome is refused.
        let later = T0 + Duration::minutes(3);
        let takeover = IdempotencyCommand::Claim {
            claimed: claimed(2, "f", later),
            now: later,
        };
        let Ok(event) = first.decide(&takeover) else {
            unreachable!("a claim past its lease is taken over")
        };
        let second = record(&[Event::IdempotencyClaimed(claimed(1, "f", T0)), event]);
        assert!(second.decide(&mine).is_err());
    }
}
