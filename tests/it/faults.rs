//! The faults of issue 21 that are about the service process and its disk: one `serve`
//! instance SIGKILLed mid-write while the other keeps serving (fault 4), `SIGTERM` under
//! load, and the disk under the embedded log filling up, then freed (fault 6). Each test
//! starts and stops only its own processes (by PID), on loopback, in well under 40 s.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};

use crate::failover::{check_answers, check_exactly_once_and_converged, Answer, Writers};
use crate::harness::eventually;
use crate::support::{Deployment, Reply, Stack, BASE_ENV, NO_RATE_LIMIT};

fn envs() -> Vec<(&'static str, &'static str)> {
    [BASE_ENV, NO_RATE_LIMIT].concat()
}

/// The answers of writers through an instance that died under them: a transport error
/// (the connection refused or cut) says nothing either way; every answer that arrived is
/// checked like any other. Returns what `check_answers` does and how many were cut.
fn check_answers_of_the_killed(
    answers: Vec<(Answer, Duration)>,
    during: &str,
) -> (Vec<String>, Vec<u64>, usize) {
    let (answered, cut): (Vec<_>, Vec<_>) =
        answers.into_iter().partition(|(a, _)| a.status.is_some());
    let (acknowledged, recorded) = check_answers(&answered, during);
    (acknowledged, recorded, cut.len())
}

/// Fault 4: two `serve` instances on one JetStream log and one PostgreSQL; writers on
/// both; instance 1 is SIGKILLed mid-write. Instance 0 keeps answering (and stays ready)
/// throughout; every acknowledged write is in the log once, nothing acknowledged is
/// missing, `verify` passes and the projections equal a fresh replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_loses_no_acknowledged_write_and_the_other_keeps_serving() {
    let started = Instant::now();
    let mut d = Deployment::start_instances(Stack::JetStreamPg, 2, &envs()).await;
    let survivor = d.svc.url("");
    let doomed = d.instance(1).url("");
    let survivors = Writers::start(&d.admin, std::slice::from_ref(&survivor));
    let victims = Writers::start(&d.admin, std::slice::from_ref(&doomed));

    // The survivor's readiness, sampled from before the kill to well after it.
    let probe = {
        let readyz = d.svc.url("/readyz");
        tokio::spawn(async move {
            let http = Client::new();
            let until = Instant::now() + Duration::from_secs(7);
            let mut seen = Vec::new();
            while Instant::now() < until {
                let r = Reply::of(http.get(&readyz)).await;
                seen.push((r.status, r.text));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = d.more[0].child.kill(); // SIGKILL, by PID: no chance to finish anything
    let _ = d.more[0].child.wait();
    let victim_answers = victims.stop().await;
    let victim_writes = victim_answers.len();
    let (victim_ack, victim_recorded, cut) =
        check_answers_of_the_killed(victim_answers, "an instance's death");
    // The survivor still takes writes after the kill.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = Reply::of(
        Client::new()
            .post(d.svc.url("/v1/api-keys"))
            .bearer_auth(&d.admin)
            .json(&serde_json::json!({ "name": "after the kill", "role": "viewer" })),
    )
    .await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.text);
    let answers = survivors.stop().await;
    let (mut acknowledged, mut recorded) = check_answers(&answers, "the other instance's death");
    acknowledged.push(after.str("id"));
    let readiness = probe.await.expect("probe");
    let not_ready: Vec<_> = readiness
        .iter()
        .filter(|(s, _)| *s != StatusCode::OK)
        .collect();
    assert!(
        not_ready.is_empty(),
        "the surviving instance was not ready: {not_ready:#?}"
    );
    eventually(
        Duration::from_secs(20),
        "the survivor caught up",
        || async {
            let r = Reply::of(Client::new().get(d.svc.url("/readyz"))).await;
            r.status == StatusCode::OK && r.body["log_head"] == r.body["projection_offset"]
        },
    )
    .await;
    let survivor_ack = acknowledged.len();
    acknowledged.extend(victim_ack.iter().cloned());
    recorded.extend(victim_recorded.iter().copied());
    assert!(
        survivor_ack > 20 && !victim_ack.is_empty(),
        "too few writes went through: {survivor_ack} and {}",
        victim_ack.len()
    );
    let _ = d.svc.child.kill();
    let _ = d.svc.child.wait();
    let pg = d.database_url.clone().expect("PostgreSQL");
    let in_log = check_exactly_once_and_converged(&d.storage, &pg, &acknowledged, &recorded).await;
    // Beyond what was acknowledged or said recorded, the log holds at most the bootstrap
    // key and the writes the kill cut off mid-request (written or not: nobody was told).
    let unanswered = in_log.len() - acknowledged.len() - recorded.len();
    assert!(
        unanswered <= 1 + cut,
        "{unanswered} unexplained keys in the log"
    );
    eprintln!(
        "killed instance: {} writes through the survivor ({survivor_ack} acknowledged), {} \
         through the killed one ({} acknowledged, {cut} without an answer: cut mid-request or refused); {} keys in the log, \
         readiness sampled {} times (all 200) until {:?} after the kill; took {:?}",
        answers.len() + 1,
        victim_writes,
        victim_ack.len(),
        in_log.len(),
        readiness.len(),
        Duration::from_secs(4),
        started.elapsed()
    );
}
