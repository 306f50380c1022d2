//! Shutdown in reverse start order, within each child's timeout; removal;
//! requests refused while shutting down.

mod support;

use std::time::Duration;

use pod_supervisor::{
    AddChild, Error, RemoveChild, Restart, Shutdown, StopOutcome, SupervisorConfig, WhichChildren,
};
use support::{child, supervise, Log};

#[actix::test]
async fn shutdown_stops_children_in_reverse_start_order() {
    tokio::time::pause();
    let log = Log::default();
    let (_a, a) = child("a", &log).spawn();
    let (_b, b) = child("b", &log).spawn();
    let (_c, c) = child("c", &log).spawn();
    let (sup, _) = supervise(SupervisorConfig::default(), vec![a, b, c]).await;
    log.take();
    let report = sup.send(Shutdown).await.unwrap();
    assert_eq!(log.take(), ["stop:c", "stop:b", "stop:a"]);
    let expected: Vec<_> = ["c", "b", "a"]
        .iter()
        .map(|id| (id.to_string(), StopOutcome::Gracefully))
        .collect();
    assert_eq!(report.stopped, expected);
    assert!(sup.send(WhichChildren).await.is_err(), "the actor stops");
}

#[actix::test]
async fn a_child_that_does_not_stop_in_time_is_reported_and_skipped() {
    tokio::time::pause();
    let log = Log::default();
    let (_a, a) = child("a", &log).spawn();
    let (_b, b) = child("b", &log).hang_on_stop().spawn();
    let (_c, c) = child("c", &log).spawn();
    let b = b.with_shutdown(Duration::from_secs(2));
    let (sup, _) = supervise(SupervisorConfig::default(), vec![a, b, c]).await;
    let started = tokio::time::Instant::now();
    let report = sup.send(Shutdown).await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2) && waited <= Duration::from_millis(2_001));
    assert_eq!(
        report.stopped,
        [
            ("c".to_owned(), StopOutcome::Gracefully),
            ("b".to_owned(), StopOutcome::TimedOut),
            ("a".to_owned(), StopOutcome::Gracefully),
        ]
    );
}

#[actix::test]
async fn requests_during_shutdown_are_refused_but_removals_honoured() {
    tokio::time::pause();
    let log = Log::default();
    let (_a, a) = child("a", &log).spawn();
    let (_b, b) = child("b", &log).hang_on_stop().spawn();
    let (sup, _) = supervise(SupervisorConfig::default(), vec![a, b]).await;
    let shutdown = sup.send(Shutdown);
    let refused = async {
        support::idle(Duration::from_millis(10)).await;
        let restart = sup.send(Restart { id: "a".into() }).await.unwrap();
        let (_x, x) = child("x", &log).spawn();
        let add = sup.send(AddChild(x)).await.unwrap();
        let remove = sup.send(RemoveChild { id: "a".into() }).await.unwrap();
        (restart, add, remove)
    };
    let (report, (restart, add, remove)) = tokio::join!(shutdown, refused);
    assert_eq!(restart, Err(Error::ShuttingDown));
    assert_eq!(add, Err(Error::ShuttingDown));
    // A removal is never refused: `a` is stopped and forgotten at once, not
    // after `b`'s stop times out, and so it is not in the shutdown's report.
    assert_eq!(remove, Ok(StopOutcome::Gracefully));
    assert_eq!(
        report.unwrap().stopped,
        [("b".to_owned(), StopOutcome::TimedOut)]
    );
}

#[actix::test]
async fn remove_child_stops_and_forgets_it() {
    tokio::time::pause();
    let log = Log::default();
    let (_a, a) = child("a", &log).spawn();
    let (_b, b) = child("b", &log).spawn();
    let (_c, c) = child("c", &log).spawn();
    let (sup, _) = supervise(SupervisorConfig::default(), vec![a, b, c]).await;
    log.take();
    let outcome = sup.send(RemoveChild { id: "b".into() }).await.unwrap();
    assert_eq!(outcome, Ok(StopOutcome::Gracefully));
    assert_eq!(log.take(), ["stop:b"]);
    let ids: Vec<_> = sup
        .send(WhichChildren)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(
        sup.send(RemoveChild { id: "b".into() }).await.unwrap(),
        Err(Error::UnknownChild { id: "b".into() })
    );
}
