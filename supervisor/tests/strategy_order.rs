//! Each strategy with three children: exactly who is stopped and restarted,
//! and in which order.

mod support;

use pod_supervisor::{Backoff, Strategy, SupervisorConfig, SupervisorEvent};
use support::{child, failed, is_restarted, supervise, Events, Log};

async fn fail_b(strategy: Strategy) -> (Vec<String>, Events) {
    let log = Log::default();
    let (_a, a) = child("a", &log).spawn();
    let (b_addr, b) = child("b", &log).spawn();
    let (_c, c) = child("c", &log).spawn();
    let config = SupervisorConfig::default()
        .with_strategy(strategy)
        .with_backoff(Backoff::immediate());
    let (_sup, mut events) = supervise(config, vec![a, b, c]).await;
    assert_eq!(log.take(), ["start:a", "start:b", "start:c"]);
    b_addr.send(failed("boom")).await.unwrap();
    let last = match strategy {
        Strategy::OneForOne => "b",
        _ => "c",
    };
    events.until(is_restarted(last)).await;
    // Anything else would have happened by now on the paused clock.
    support::idle(std::time::Duration::from_secs(60)).await;
    (log.take(), events)
}

#[actix::test]
async fn one_for_one_restarts_only_the_failed_child() {
    tokio::time::pause();
    let (log, mut events) = fail_b(Strategy::OneForOne).await;
    assert_eq!(log, ["restart:b"]);
    assert!(events.ready_now().is_empty());
}

#[actix::test]
async fn one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order() {
    tokio::time::pause();
    let (log, _) = fail_b(Strategy::OneForAll).await;
    assert_eq!(
        log,
        ["stop:c", "stop:a", "restart:a", "restart:b", "restart:c"]
    );
}

#[actix::test]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    tokio::time::pause();
    let (log, _) = fail_b(Strategy::RestForOne).await;
    assert_eq!(log, ["stop:c", "restart:b", "restart:c"]);
}

#[actix::test]
async fn one_for_all_reports_each_restart_with_the_failure_latency() {
    tokio::time::pause();
    let log = Log::default();
    let (_a, a) = child("a", &log).spawn();
    let (b_addr, b) = child("b", &log).spawn();
    let config = SupervisorConfig::default()
        .with_strategy(Strategy::OneForAll)
        .with_backoff(Backoff::immediate());
    let (_sup, mut events) = supervise(config, vec![a, b]).await;
    events.ready_now();
    b_addr.send(failed("boom")).await.unwrap();
    let mut restarting = Vec::new();
    loop {
        match events.next().await {
            SupervisorEvent::ChildRestarting { id, attempt, .. } => restarting.push((id, attempt)),
            SupervisorEvent::ChildRestarted { id, .. } if id == "b" => break,
            _ => {}
        }
    }
    // The cycle carries the failed child's attempt to every child it restarts.
    assert_eq!(restarting, [("a".to_owned(), 1), ("b".to_owned(), 1)]);
}
