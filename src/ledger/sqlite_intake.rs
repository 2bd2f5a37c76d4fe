//! What the embedded log's writer commits next ([`Intake::next_group`]): every append
//! waiting, up to [`MAX_GROUP`], in one transaction (one fsync for all of them).
//!
//! An append no caller waits on ([`Flush::WithNext`]: a tool call's `tool.completed`,
//! appended after the agent was answered) is held up to the intake's `hold` for the next
//! append that must be durable now, and committed with it: at one client a gateway call
//! then costs one flush (its `tool.requested`, carrying the previous call's completion)
//! instead of two, and that flush no longer queues behind the other. A held append is not
//! written yet, so no reader (nor any subscriber, webhook or SIEM feed) sees its position
//! before it is durable; if the process dies while it is held it is lost like an append
//! that never reached the writer, and tool call recovery records the call's outcome as
//! `unknown`.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::log::{Appended, Flush, LogError, SignedEvent};

/// Most appends committed in one transaction.
pub(super) const MAX_GROUP: usize = 256;

/// How long an append no caller waits on is held for company: far longer than the pause
/// between a gateway call's answer and the next call (a fraction of a millisecond), short
/// enough that audit readers never notice.
pub(super) const HOLD: Duration = Duration::from_millis(5);

pub(super) struct AppendRequest {
    pub event: SignedEvent,
    pub expected_version: u64,
    pub flush: Flush,
    pub reply: oneshot::Sender<Result<Appended, LogError>>,
}

pub(super) enum WriterCommand {
    Append(AppendRequest),
    /// Finish what is queued before it, close the file, then answer.
    Close(oneshot::Sender<()>),
}

/// What the writer does next: commit `appends` (in arrival order; may be empty), then
/// close when `close` is set, or end when the log was dropped (`ended`).
#[derive(Default)]
pub(super) struct Group {
    pub appends: Vec<AppendRequest>,
    pub close: Option<oneshot::Sender<()>>,
    pub ended: bool,
}

/// The writer's side of the append queue.
pub(super) struct Intake {
    queue: mpsc::Receiver<WriterCommand>,
    /// A runtime of this thread's own for a bounded wait on the queue (the writer is a
    /// plain thread). Without one (it could not be built) nothing is held.
    timer: Option<tokio::runtime::Runtime>,
    hold: Duration,
}

/// How long `wait` waits for the next command.
enum Wait {
    /// Until one comes (nothing to commit yet).
    Block,
    /// Not at all (an append must be durable now).
    Poll,
    /// Until this instant (every append so far may wait for company).
    Until(Instant),
}

enum Next {
    Command(WriterCommand),
    /// Nothing came (at once, or within the wait).
    Nothing,
    /// Every sender is gone: the log was dropped.
    Closed,
}

impl Intake {
    pub fn new(queue: mpsc::Receiver<WriterCommand>, hold: Duration) -> Intake {
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(
                |e| tracing::warn!(error = %e, "event log writer: no timer; appends are not held"),
            )
            .ok();
        Intake { queue, timer, hold }
    }

    /// Blocks for the first command, then takes what is waiting: at once while some append
    /// must be durable now, else until one that must arrives or the oldest held append has
    /// waited `hold`.
    pub fn next_group(&mut self) -> Group {
        let mut group = Group::default();
        let mut urgent = false;
        let mut held_since: Option<Instant> = None;
        while group.appends.len() < MAX_GROUP {
            let wait = match (group.appends.is_empty(), urgent, held_since) {
                (true, _, _) => Wait::Block,
                (false, false, Some(since)) => Wait::Until(since + self.hold),
                _ => Wait::Poll,
            };
            match self.wait(wait) {
                Next::Command(WriterCommand::Append(request)) => {
                    match request.flush {
                        Flush::Now => urgent = true,
                        Flush::WithNext => {
                            held_since.get_or_insert_with(Instant::now);
                        }
                    }
                    group.appends.push(request);
                }
                Next::Command(WriterCommand::Close(done)) => {
                    group.close = Some(done);
                    break;
                }
                Next::Closed => {
                    group.ended = true;
                    break;
                }
                Next::Nothing => break,
            }
        }
        group
    }

    /// The next command: blocking, what is queued already, or what comes by `Until`'s
    /// instant.
    fn wait(&mut self, wait: Wait) -> Next {
        let deadline = match wait {
            Wait::Block => {
                return match self.queue.blocking_recv() {
                    Some(command) => Next::Command(command),
                    None => Next::Closed,
                }
            }
            Wait::Poll => return self.poll(),
            Wait::Until(deadline) => deadline,
        };
        // What is queued already needs no timer.
        let queued = self.poll();
        if !matches!(queued, Next::Nothing) {
            return queued;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(timer) = self.timer.as_ref().filter(|_| !left.is_zero()) else {
            return Next::Nothing;
        };
        match timer.block_on(async {
            // Made inside the runtime: a timer needs it.
            tokio::time::timeout(left, self.queue.recv()).await
        }) {
            Ok(Some(command)) => Next::Command(command),
            Ok(None) => Next::Closed,
            Err(_) => Next::Nothing,
        }
    }

    fn poll(&mut self) -> Next {
        match self.queue.try_recv() {
            Ok(command) => Next::Command(command),
            Err(mpsc::error::TryRecvError::Empty) => Next::Nothing,
            Err(mpsc::error::TryRecvError::Disconnected) => Next::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::AggregateKey;
    use bytes::Bytes;
    use uuid::Uuid;

    fn request(flush: Flush) -> AppendRequest {
        AppendRequest {
            event: SignedEvent {
                key: AggregateKey::new("ws", "tool_call", Uuid::now_v7().to_string()).expect("key"),
                version: 1,
                event_id: Uuid::now_v7(),
                envelope: Bytes::from_static(b"{}"),
                sealed: Default::default(),
            },
            expected_version: 0,
            flush,
            reply: oneshot::channel().0,
        }
    }

    fn flushes(group: &Group) -> Vec<Flush> {
        group.appends.iter().map(|a| a.flush).collect()
    }

    /// Runs `next_group` on a thread of its own, as the writer does.
    fn next_group(mut intake: Intake) -> (Group, Intake, Duration) {
        std::thread::spawn(move || {
            let started = Instant::now();
            let group = intake.next_group();
            (group, intake, started.elapsed())
        })
        .join()
        .expect("intake thread")
    }

    #[test]
    fn appends_waiting_go_together_and_a_now_append_is_not_held() {
        let (tx, rx) = mpsc::channel(16);
        for flush in [Flush::Now, Flush::WithNext, Flush::Now] {
            assert!(
                tx.try_send(WriterCommand::Append(request(flush))).is_ok(),
                "queued"
            );
        }
        let intake = Intake::new(rx, Duration::from_secs(30));
        let (group, _intake, took) = next_group(intake);
        assert_eq!(
            flushes(&group),
            vec![Flush::Now, Flush::WithNext, Flush::Now]
        );
        assert!(took < Duration::from_secs(30), "an urgent group was held");
    }

    #[test]
    fn a_held_append_goes_with_the_next_now_append() {
        let (tx, rx) = mpsc::channel(16);
        assert!(
            tx.try_send(WriterCommand::Append(request(Flush::WithNext)))
                .is_ok(),
            "queued"
        );
        let sender = std::thread::spawn(move || {
            // Once the intake has taken the held append off the queue, it is holding it.
            while tx.capacity() < tx.max_capacity() {
                std::thread::yield_now();
            }
            assert!(
                tx.try_send(WriterCommand::Append(request(Flush::Now)))
                    .is_ok(),
                "queued"
            );
            tx
        });
        let (group, _intake, took) = next_group(Intake::new(rx, Duration::from_secs(30)));
        let _tx = sender.join().expect("sender");
        assert_eq!(flushes(&group), vec![Flush::WithNext, Flush::Now]);
        assert!(
            took < Duration::from_secs(30),
            "held past the urgent append"
        );
    }

    #[test]
    fn a_held_append_alone_is_committed_after_the_hold() {
        let (tx, rx) = mpsc::channel(16);
        assert!(
            tx.try_send(WriterCommand::Append(request(Flush::WithNext)))
                .is_ok(),
            "queued"
        );
        let hold = Duration::from_millis(20);
        let (group, _intake, took) = next_group(Intake::new(rx, hold));
        assert_eq!(flushes(&group), vec![Flush::WithNext]);
        assert!(took >= hold, "committed before the hold ended: {took:?}");
        drop(tx);
    }

    #[test]
    fn close_and_a_dropped_log_end_a_held_group() {
        let (tx, rx) = mpsc::channel(16);
        assert!(
            tx.try_send(WriterCommand::Append(request(Flush::WithNext)))
                .is_ok(),
            "queued"
        );
        let (done, _closed) = oneshot::channel();
        assert!(tx.try_send(WriterCommand::Close(done)).is_ok(), "queued");
        let (group, intake, _) = next_group(Intake::new(rx, Duration::from_secs(30)));
        assert_eq!(flushes(&group), vec![Flush::WithNext]);
        assert!(group.close.is_some());

        assert!(
            tx.try_send(WriterCommand::Append(request(Flush::WithNext)))
                .is_ok(),
            "queued"
        );
        drop(tx);
        let (group, _intake, _) = next_group(intake);
        assert_eq!(flushes(&group), vec![Flush::WithNext]);
        assert!(
            group.ended,
            "a dropped log ends the writer after what was queued"
        );
    }
}
