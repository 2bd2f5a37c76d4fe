//! One conformance suite, run against both event-log backends.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use authledger::domain::{Event, WorkspaceCreated};
use authledger::ledger::writer::seal_event;
use authledger::ledger::{Actor, AggregateKey, Flush, LogError, Signer};

use crate::harness::{ledger, Backend};

fn event(name: &str) -> Event {
    Event::WorkspaceCreated(WorkspaceCreated {
        name: name.to_string(),
    })
}

fn key(id: &str) -> AggregateKey {
    AggregateKey::new("ws1", "workspace", id).expect("key")
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               async fn $name() { super::$name(crate::harness::Backend::sqlite()).await } )*
        }
        mod jetstream {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               async fn $name() { super::$name(crate::harness::Backend::jetstream()).await } )*
        }
    };
}

both_backends!(
    append_then_read_back,
    expected_version_is_enforced_with_a_typed_conflict,
    concurrent_writers_exactly_one_wins_each_version,
    concurrent_ledgers_never_lose_or_fork_a_version,
    retry_after_lost_ack_does_not_duplicate,
    reusing_an_event_id_for_other_content_is_refused,
    global_order_is_stable_across_restarts,
    late_subscriber_catches_up_then_follows_live,
    a_subscriber_follows_appends_through_another_handle,
    cached_folds_never_decide_on_stale_state,
    a_range_is_read_page_by_page_exactly,
    an_unwaited_append_lands_like_any_other,
);

async fn append_then_read_back(backend: Backend) {
    let log = backend.open().await;
    let signer = Signer::generate();
    assert_eq!(log.head().await.expect("head"), 0);
    assert!(log
        .read_aggregate(&key("a"))
        .await
        .expect("read")
        .is_empty());
    assert!(log
        .last_of_aggregate(&key("a"))
        .await
        .expect("last")
        .is_none());
    let (e1, h1) = seal_event(
        &signer,
        &key("a"),
        0,
        None,
        &Actor::system("t"),
        &event("one"),
        now(),
    )
    .expect("seal");
    let a1 = log.append(&e1, 0).await.expect("append 1");
    let (e2, _) = seal_event(
        &signer,
        &key("b"),
        0,
        None,
        &Actor::system("t"),
        &event("two"),
        now(),
    )
    .expect("seal");
    let a2 = log.append(&e2, 0).await.expect("append 2");
    let (e3, _) = seal_event(
        &signer,
        &key("a"),
        1,
        Some(h1),
        &Actor::system("t"),
        &event("three"),
        now(),
    )
    .expect("seal");
    let a3 = log.append(&e3, 1).await.expect("append 3");
    assert!(a1.position < a2.position && a2.position < a3.position);
    assert!(!a1.duplicate && !a2.duplicate && !a3.duplicate);
    assert_eq!(log.head().await.expect("head"), a3.position);

    let agg = log.read_aggregate(&key("a")).await.expect("read a");
    assert_eq!(
        agg.iter().map(|r| r.envelope.clone()).collect::<Vec<_>>(),
        vec![e1.envelope.clone(), e3.envelope.clone()]
    );
    assert_eq!(agg[0].key, key("a"));
    let last = log
        .last_of_aggregate(&key("a"))
        .await
        .expect("last")
        .expect("some");
    assert_eq!(last.envelope, e3.envelope);
    assert_eq!(last.position, a3.position);

    // What follows a version (how a cached fold is checked).
    let envelopes = |v: Vec<authledger::ledger::RecordedEvent>| {
        v.into_iter().map(|r| r.envelope).collect::<Vec<_>>()
    };
    let after = |v, p| {
        let log = log.clone();
        async move {
            log.read_aggregate_after(&key("a"), v, p)
                .await
                .expect("read after")
        }
    };
    assert_eq!(
        envelopes(after(0, 0).await),
        vec![e1.envelope.clone(), e3.envelope.clone()]
    );
    assert_eq!(
        envelopes(after(1, a1.position).await),
        vec![e3.envelope.clone()]
    );
    assert!(after(2, a3.position).await.is_empty());
    assert!(log
        .read_aggregate_after(&key("nothing"), 0, 0)
        .await
        .expect("read after")
        .is_empty());

    let all = log.read_from(1, 100).await.expect("read all");
    assert_eq!(
        all.iter().map(|r| r.position).collect::<Vec<_>>(),
        vec![a1.position, a2.position, a3.position]
    );
    let tail = log.read_from(a2.position, 1).await.expect("read from 2");
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].envelope, e2.envelope);
    assert!(log
        .read_from(a3.position + 1, 10)
        .await
        .expect("read past head")
        .is_empty());
}

/// An append no caller waits on (`Flush::WithNext`, which the embedded log holds to flush
/// with the next append): once it returns it is in the log like any other, whether it went
/// alone (after its hold) or with an append that came while it was held; a subscriber sees
/// each event once, in position order; sent again it is a duplicate.
async fn an_unwaited_append_lands_like_any_other(backend: Backend) {
    let log = backend.open().await;
    let signer = Signer::generate();
    let mut live = log.subscribe(1).await.expect("subscribe");
    let seal = |id: &str| {
        seal_event(
            &signer,
            &key(id),
            0,
            None,
            &Actor::system("t"),
            &event(id),
            now(),
        )
        .expect("seal")
        .0
    };
    let alone = seal("alone");
    let a = log
        .append_with(&alone, 0, Flush::WithNext)
        .await
        .expect("alone");
    let read = log.read_from(a.position, 1).await.expect("read");
    assert_eq!(read[0].envelope, alone.envelope, "{}", backend.name());

    let (held, urgent) = (seal("held"), seal("urgent"));
    let (h, u) = tokio::join!(log.append_with(&held, 0, Flush::WithNext), async {
        tokio::task::yield_now().await;
        log.append(&urgent, 0).await
    });
    let (h, u) = (h.expect("held"), u.expect("urgent"));
    assert!(!a.duplicate && !h.duplicate && !u.duplicate);
    let again = log
        .append_with(&held, 0, Flush::WithNext)
        .await
        .expect("again");
    assert_eq!((again.position, again.duplicate), (h.position, true));
    assert_eq!(
        log.head().await.expect("head"),
        a.position.max(h.position).max(u.position)
    );

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let next = tokio::time::timeout(Duration::from_secs(10), live.next())
            .await
            .expect("the subscriber sees every append")
            .expect("stream open")
            .expect("event");
        seen.push(next);
    }
    assert!(seen.windows(2).all(|w| w[0].position < w[1].position));
    let mut envelopes: Vec<_> = seen.iter().map(|e| e.envelope.clone()).collect();
    let mut expected = vec![alone.envelope, held.envelope, urgent.envelope];
    envelopes.sort();
    expected.sort();
    assert_eq!(envelopes, expected, "{}", backend.name());
}

async fn expected_version_is_enforced_with_a_typed_conflict(backend: Backend) {
    let log = backend.open().await;
    let signer = Signer::generate();
    let (e1, h1) = seal_event(
        &signer,
        &key("a"),
        0,
        None,
        &Actor::system("t"),
        &event("one"),
        now(),
    )
    .expect("seal");
    log.append(&e1, 0).await.expect("append");
    // A second "first event" loses.
    let (stale, _) = seal_event(
        &signer,
        &key("a"),
        0,
        None,
        &Actor::system("t"),
        &event("stale"),
        now(),
    )
    .expect("seal");
    match log.append(&stale, 0).await {
        Err(LogError::Conflict {
            expected: 0,
            actual: 1,
            ..
        }) => {}
        other => panic!("{}: expected conflict, got {other:?}", backend.name()),
    }
    // Also through another handle on the same log (another instance: nothing cached).
    let other = backend.open().await;
    match other.append(&stale, 0).await {
        Err(LogError::Conflict {
            expected: 0,
            actual: 1,
            ..
        }) => {}
        other => panic!("{}: expected conflict, got {other:?}", backend.name()),
    }
    // Version must follow the expected version.
    let (skip, _) = seal_event(
        &signer,
        &key("a"),
        5,
        Some(h1),
        &Actor::system("t"),
        &event("skip"),
        now(),
    )
    .expect("seal");
    assert!(matches!(
        log.append(&skip, 1).await,
        Err(LogError::Invalid(_))
    ));
    assert_eq!(log.read_aggregate(&key("a")).await.expect("read").len(), 1);
}

/// N writers race for each version of one aggregate: exactly one wins each time.
async fn concurrent_writers_exactly_one_wins_each_version(backend: Backend) {
    const WRITERS: usize = 8;
    const VERSIONS: u64 = 10;
    let log = backend.open().await;
    let signer = Arc::new(Signer::generate());
    let mut prev_hash: Option<String> = None;
    for version in 0..VERSIONS {
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (ev, hash) = seal_event(
                &signer,
                &key("contended"),
                version,
                prev_hash.clone(),
                &Actor::system(format!("w{w}")),
                &event(&format!("v{version} w{w}")),
                now(),
            )
            .expect("seal");
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                (log.append(&ev, version).await, hash)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.expect("task") {
                (Ok(a), hash) => winners.push((a, hash)),
                (
                    Err(LogError::Conflict {
                        expected, actual, ..
                    }),
                    _,
                ) => {
                    assert_eq!((expected, actual), (version, version + 1));
                }
                (Err(e), _) => panic!("{}: unexpected error {e}", backend.name()),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "{}: version {}: {} winners",
            backend.name(),
            version + 1,
            winners.len()
        );
        prev_hash = Some(winners[0].1.clone());
    }
    assert_eq!(
        log.read_aggregate(&key("contended"))
            .await
            .expect("read")
            .len() as u64,
        VERSIONS
    );
}

/// Independent ledgers (separate caches, as separate instances would have) append to one
/// aggregate at once; every append is acknowledged once and the chain stays linear.
async fn concurrent_ledgers_never_lose_or_fork_a_version(backend: Backend) {
    const WRITERS: usize = 6;
    const EACH: usize = 15;
    let log = backend.open().await;
    let seed = [9u8; 32];
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let l = ledger(log.clone(), Signer::from_seed(&seed));
        tasks.push(tokio::spawn(async move {
            let mut positions = Vec::new();
            for i in 0..EACH {
                let c = l
                    .append_next(
                        &key("shared"),
                        &Actor::system(format!("w{w}")),
                        &event(&format!("w{w} {i}")),
                    )
                    .await
                    .expect("append_next");
                positions.push(c.position);
            }
            positions
        }));
    }
    let mut positions = HashSet::new();
    for t in tasks {
        for p in t.await.expect("task") {
            assert!(positions.insert(p), "position {p} acknowledged twice");
        }
    }
    let events = log.read_aggregate(&key("shared")).await.expect("read");
    assert_eq!(events.len(), WRITERS * EACH);
    let mut ring = authledger::ledger::KeyRing::default();
    ring.insert(Signer::from_seed(&seed).public_key());
    let report = authledger::ledger::verify::verify_log(log.clone(), ring, vec![])
        .await
        .expect("verify");
    assert!(report.ok, "{:?}", report.failure);
    assert_eq!(report.events as usize, WRITERS * EACH);
}

async fn retry_after_lost_ack_does_not_duplicate(backend: Backend) {
    let log = backend.open().await;
    let signer = Signer::generate();
    let (e1, h1) = seal_event(
        &signer,
        &key("a"),
        0,
        None,
        &Actor::system("t"),
        &event("one"),
        now(),
    )
    .expect("seal");
    let first = log.append(&e1, 0).await.expect("append");
    // The ack was "lost": the caller retries the very same signed event.
    let again = log.append(&e1, 0).await.expect("retry");
    assert_eq!(again.position, first.position);
    assert!(again.duplicate);
    // Even after the aggregate moved on, the retry is recognised, not doubled.
    let (e2, _) = seal_event(
        &signer,
        &key("a"),
        1,
        Some(h1),
        &Actor::system("t"),
        &event("two"),
        now(),
    )
    .expect("seal");
    let second = log.append(&e2, 1).await.expect("append 2");
    let late = log.append(&e1, 0).await.expect("late retry");
    assert_eq!((late.position, late.duplicate), (first.position, true));
    let late2 = log.append(&e2, 1).await.expect("late retry 2");
    assert_eq!((late2.position, late2.duplicate), (second.position, true));
    assert_eq!(log.head().await.expect("head"), second.position);
    assert_eq!(log.read_from(1, 100).await.expect("all").len(), 2);
}

async fn reusing_an_event_id_for_other_content_is_refused(backend: Backend) {
    let log = backend.open().await;
    let signer = Signer::generate();
    let (e1, _) = seal_event(
        &signer,
        &key("a"),
        0,
        None,
        &Actor::system("t"),
        &event("one"),
        now(),
    )
    .expect("seal");
    log.append(&e1, 0).await.expect("append");
    let (mut forged, _) = seal_event(
        &signer,
        &key("b"),
        0,
        None,
        &Actor::system("t"),
        &event("two"),
        now(),
    )
    .expect("seal");
    forged.event_id = e1.event_id;
    match log.append(&forged, 0).await {
        Err(LogError::EventIdReused(id)) => assert_eq!(id, e1.event_id),
        other => panic!("{}: expected EventIdReused, got {other:?}", backend.name()),
    }
    assert_eq!(log.head().await.expect("head"), 1);
}

async fn global_order_is_stable_across_restarts(mut backend: Backend) {
    let signer = Signer::from_seed(&[3u8; 32]);
    let before = {
        let log = backend.open().await;
        let l = ledger(log.clone(), Signer::from_seed(&[3u8; 32]));
        for i in 0..30 {
            l.append_next(
                &key(&format!("k{}", i % 7)),
                &Actor::system("t"),
                &event(&format!("e{i}")),
            )
            .await
            .expect("append");
        }
        log.read_from(1, 1000).await.expect("read")
    };
    backend.restart();
    let log = backend.open().await;
    let after = log.read_from(1, 1000).await.expect("read after restart");
    assert_eq!(
        before,
        after,
        "{}: order changed across restart",
        backend.name()
    );
    assert_eq!(after.len(), 30);
    // And the log keeps working after the restart.
    let l = ledger(log.clone(), signer);
    let c = l
        .append_next(&key("k0"), &Actor::system("t"), &event("after"))
        .await
        .expect("append after restart");
    assert_eq!(c.position, 31);
}

/// `read_range` (what a rebuild reads through): exactly the positions `from..=until`, in
/// order, in pages of at most the size asked, ending at `until` or at the log's end without
/// waiting for events that are not there.
async fn a_range_is_read_page_by_page_exactly(backend: Backend) {
    let log = backend.open().await;
    let l = ledger(log.clone(), Signer::generate());
    for i in 0..25 {
        l.append_next(
            &key(&format!("k{}", i % 4)),
            &Actor::system("t"),
            &event(&format!("e{i}")),
        )
        .await
        .expect("append");
    }
    let all = log.read_from(1, 100).await.expect("read all");
    for (from, until, page) in [
        (1, 25, 7),
        (1, 25, 25),
        (3, 17, 4),
        (9, 9, 3),
        (20, 40, 6),
        (0, 2, 1),
    ] {
        let mut range = log.read_range(from, until).await.expect("range");
        let mut read = Vec::new();
        loop {
            let events = tokio::time::timeout(Duration::from_secs(3), range.next_page(page))
                .await
                .expect("a page, not a wait for events that are not there")
                .expect("page");
            if events.is_empty() {
                break;
            }
            assert!(events.len() <= page, "{}: page over {page}", backend.name());
            read.extend(events);
        }
        let expected: Vec<_> = all
            .iter()
            .filter(|e| e.position >= from.max(1) && e.position <= until)
            .cloned()
            .collect();
        assert_eq!(
            read,
            expected,
            "{}: range {from}..={until} by {page}",
            backend.name()
        );
    }
    let mut empty = log.read_range(5, 4).await.expect("empty range");
    assert!(empty.next_page(10).await.expect("page").is_empty());
}

async fn late_subscriber_catches_up_then_follows_live(backend: Backend) {
    let log = backend.open().await;
    let l = ledger(log.clone(), Signer::generate());
    for i in 0..50 {
        l.append_next(
            &key(&format!("k{}", i % 5)),
            &Actor::system("t"),
            &event(&format!("e{i}")),
        )
        .await
        .expect("append");
    }
    let mut sub = log.subscribe(1).await.expect("subscribe");
    for expected in 1..=50u64 {
        let ev = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("catch-up in time")
            .expect("stream open")
            .expect("event");
        assert_eq!(ev.position, expected);
    }
    let writer = tokio::spawn(async move {
        for i in 0..10 {
            l.append_next(
                &key("live"),
                &Actor::system("t"),
                &event(&format!("live{i}")),
            )
            .await
            .expect("append live");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    for expected in 51..=60u64 {
        let ev = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("live event in time")
            .expect("stream open")
            .expect("event");
        assert_eq!(ev.position, expected);
        assert_eq!(ev.key, key("live"));
    }
    writer.await.expect("writer");
    // A subscriber that starts in the middle starts exactly there.
    let mut mid = log.subscribe(42).await.expect("subscribe mid");
    let first = tokio::time::timeout(Duration::from_secs(10), mid.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("ev");
    assert_eq!(first.position, 42);
}

/// Two handles on one log (two processes on one SQLite file, two instances on one
/// stream): a subscriber on the first sees every event in position order, once, whichever
/// handle appended it (the SQLite handle passes on its own commits without reading them
/// back, and must notice the other's in between).
async fn a_subscriber_follows_appends_through_another_handle(backend: Backend) {
    let first = backend.open().await;
    let other = backend.open().await;
    let seed = [9u8; 32];
    let through_first = ledger(first.clone(), Signer::from_seed(&seed));
    let through_other = ledger(other.clone(), Signer::from_seed(&seed));
    let mut sub = first.subscribe(1).await.expect("subscribe");
    let mut expected_keys = Vec::new();
    for i in 0..12 {
        let (l, name) = if i % 3 == 1 {
            (&through_other, "other")
        } else {
            (&through_first, "first")
        };
        let k = key(&format!("{name}{i}"));
        l.append_next(&k, &Actor::system("t"), &event(&format!("e{i}")))
            .await
            .expect("append");
        expected_keys.push(k);
        if i % 4 == 3 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    for (i, k) in expected_keys.iter().enumerate() {
        let ev = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event");
        assert_eq!(ev.position, i as u64 + 1);
        assert_eq!(&ev.key, k);
    }
    let extra = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
    assert!(
        extra.is_err(),
        "nothing beyond the twelve events: {extra:?}"
    );
}

/// Every read used to create a JetStream consumer that the server kept for 30 s; past 1000
/// per stream every request failed. Reads now leave no consumer behind (direct gets for
/// small aggregates, deleted consumers for ranges).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_reads_leave_no_consumers_behind() {
    let nats = crate::harness::NatsServer::start();
    let opened: Arc<dyn authledger::ledger::EventLog> = Arc::new(
        authledger::ledger::jetstream_log::JetStreamEventLog::open(nats.options("LEDGER"))
            .await
            .expect("open"),
    );
    let signer = Signer::generate();
    // 40 events: more than the direct-get budget, so both read paths run.
    let mut prev = None;
    for v in 0..40u64 {
        let (e, h) = seal_event(
            &signer,
            &key("long"),
            v,
            prev.clone(),
            &Actor::system("t"),
            &event(&format!("e{v}")),
            now(),
        )
        .expect("seal");
        opened.append(&e, v).await.expect("append");
        prev = Some(h);
    }
    for i in 0..1100 {
        let agg = opened.read_aggregate(&key("long")).await.expect("read");
        assert_eq!(agg.len(), 40, "read {i}");
        assert!(agg.windows(2).all(|w| w[0].position < w[1].position));
        if i % 10 == 0 {
            assert_eq!(opened.read_from(1, 5).await.expect("range").len(), 5);
            let mut range = opened.read_range(1, 40).await.expect("range");
            while !range.next_page(16).await.expect("page").is_empty() {}
        }
    }
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("LEDGER").await.expect("stream");
    let consumers = stream.info().await.expect("info").state.consumer_count;
    assert!(consumers < 5, "{consumers} consumers left behind");
}

/// Two ledgers (two instances, each with its own cache of folded states) take turns using
/// one scoped token with `max_uses: 2`. Each decides first on its cached state, which the
/// other has made stale: the stale decision must lose its append and be decided again on
/// the log, so exactly two uses land and the third is refused.
async fn cached_folds_never_decide_on_stale_state(backend: Backend) {
    use authledger::domain::token::{ScopedToken, TokenCommand, TokenIssued, TokenRefusal};
    use authledger::domain::DomainError;
    use authledger::ledger::LedgerError;

    let log = backend.open().await;
    let seed = [7u8; 32];
    let a = ledger(log.clone(), Signer::from_seed(&seed));
    let b = ledger(log.clone(), Signer::from_seed(&seed));
    let actor = Actor::system("t");
    let issued = TokenIssued {
        connection_id: "c1".into(),
        auth_config_id: "ac1".into(),
        user_id: "u1".into(),
        scopes: vec![],
        tool: None,
        expires_at: now() + time::Duration::minutes(5),
        max_uses: Some(2),
        fingerprint: "sha256:00".into(),
        key_id: "k".into(),
    };
    let use_it = |n: &str| TokenCommand::Use {
        now: now(),
        tool: "t.tool".into(),
        tool_call_id: n.into(),
    };
    a.execute::<ScopedToken>("ws1", "tok1", &actor, &TokenCommand::Issue(issued))
        .await
        .expect("issue");
    // a caches version 1 (0 uses); b reads the log.
    let first = b
        .execute::<ScopedToken>("ws1", "tok1", &actor, &use_it("1"))
        .await
        .expect("first use through b");
    assert_eq!(first.version, 2);
    // a's cache is stale (version 1): its decision loses the append and is re-decided.
    let second = a
        .execute::<ScopedToken>("ws1", "tok1", &actor, &use_it("2"))
        .await
        .expect("second use through a");
    assert_eq!(second.version, 3);
    // b's cache (version 2, one use) would allow a third use: the log says used up.
    let third = b
        .execute::<ScopedToken>("ws1", "tok1", &actor, &use_it("3"))
        .await;
    assert!(
        matches!(
            third,
            Err(LedgerError::Domain(DomainError::Token(
                TokenRefusal::UsedUp
            )))
        ),
        "{third:?}"
    );
    // `load` always reads what follows the cache: both see the two uses.
    for l in [&a, &b] {
        let token = l.load::<ScopedToken>("ws1", "tok1").await.expect("load");
        assert_eq!(token.uses, 2);
    }
    let events = log
        .read_aggregate(&AggregateKey::new("ws1", "token", "tok1").expect("key"))
        .await
        .expect("read");
    assert_eq!(events.len(), 3);
    let mut ring = authledger::ledger::KeyRing::default();
    ring.insert(Signer::from_seed(&seed).public_key());
    let report = authledger::ledger::verify::verify_log(log.clone(), ring, vec![])
        .await
        .expect("verify");
    assert!(report.ok, "{:?}", report.failure);
}
