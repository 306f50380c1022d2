//! Ordered start: each child ready before the next starts; run-time
//! additions reply once ready; misuse gives clear errors.

mod support;

use std::time::Duration;

use actix::Actor;
use pod_supervisor::{
    AddChild, Error, GetStatus, RemoveChild, Restart, Supervisor, SupervisorConfig,
    SupervisorEvent, SupervisorPhase, WhichChildren,
};
use support::{child, failed, is_gave_up, subscribe, BecomeReady, Log};

#[actix::test]
async fn children_start_in_order_each_after_the_previous_is_ready() {
    tokio::time::pause();
    let log = Log::default();
    let (a_addr, a) = child("a", &log).manual_ready().spawn();
    let (b_addr, b) = child("b", &log).manual_ready().spawn();
    let (_c, c) = child("c", &log).spawn();
    let sup = support::with_children(SupervisorConfig::default(), vec![a, b, c]).start();
    let mut events = subscribe(&sup).await;
    support::idle(Duration::from_secs(60)).await;
    assert_eq!(log.take(), ["start:a"]);
    assert_eq!(
        sup.send(GetStatus).await.unwrap().phase,
        SupervisorPhase::Starting
    );

    a_addr.send(BecomeReady).await.unwrap();
    events
        .until(|e| matches!(e, SupervisorEvent::ChildStarted { id } if id == "a"))
        .await;
    support::idle(Duration::from_secs(60)).await;
    assert_eq!(log.take(), ["start:b"]);

    b_addr.send(BecomeReady).await.unwrap();
    events
        .until(|e| matches!(e, SupervisorEvent::ChildStarted { id } if id == "c"))
        .await;
    assert_eq!(log.take(), ["start:c"]);
    assert_eq!(
        sup.send(GetStatus).await.unwrap().phase,
        SupervisorPhase::Running
    );
}

#[actix::test]
async fn add_child_replies_once_the_child_is_ready() {
    tokio::time::pause();
    let log = Log::default();
    let (a_addr, a) = child("a", &log).manual_ready().spawn();
    let sup = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    let mut reply = Box::pin(sup.send(AddChild(a)));
    assert!(tokio::time::timeout(Duration::from_secs(60), &mut reply)
        .await
        .is_err());
    a_addr.send(BecomeReady).await.unwrap();
    assert_eq!(reply.await.unwrap(), Ok(()));
}

#[actix::test]
async fn a_child_failing_before_ready_is_reported_and_forgotten() {
    tokio::time::pause();
    let log = Log::default();
    let (a_addr, a) = child("a", &log).manual_ready().spawn();
    let sup = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    let reply = sup.send(AddChild(a));
    let failing = async {
        support::idle(Duration::from_secs(1)).await;
        a_addr.send(failed("no model")).await.unwrap();
    };
    let (result, ()) = tokio::join!(reply, failing);
    let err = result.unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::ChildFailedToStart { id, .. } if id == "a"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "child `a` failed to start");
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("no model"));
    assert!(sup.send(WhichChildren).await.unwrap().is_empty());
}

#[actix::test]
async fn a_child_that_may_fail_its_start_is_restarted_instead_of_forgotten() {
    tokio::time::pause();
    let log = Log::default();
    let (a_addr, a) = child("a", &log).manual_ready().spawn();
    let sup = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    let reply = sup
        .send(AddChild(a.with_restart_on_start_failure(true)))
        .await
        .unwrap();
    assert_eq!(reply, Ok(()), "the add does not wait for readiness");
    a_addr
        .send(failed("model still downloading"))
        .await
        .unwrap();
    support::idle(Duration::from_secs(1)).await;
    assert_eq!(log.take(), ["start:a", "restart:a"]);
    let children = sup.send(WhichChildren).await.unwrap();
    assert_eq!(children[0].restarts, 1);
    assert_eq!(
        children[0].last_cause.as_deref(),
        Some("model still downloading")
    );
}

#[actix::test]
async fn a_failed_initial_start_stops_the_started_children_and_gives_up() {
    tokio::time::pause();
    let log = Log::default();
    let (_a, a) = child("a", &log).spawn();
    let (b_addr, b) = child("b", &log).manual_ready().spawn();
    let (_c, c) = child("c", &log).spawn();
    let sup = support::with_children(SupervisorConfig::default(), vec![a, b, c]).start();
    let mut events = subscribe(&sup).await;
    support::idle(Duration::from_secs(1)).await;
    b_addr.send(failed("bad config")).await.unwrap();
    let SupervisorEvent::GaveUp { reason, .. } = events.until(is_gave_up).await else {
        unreachable!()
    };
    assert_eq!(reason, "child `b` failed to start: bad config");
    assert_eq!(log.take(), ["start:a", "start:b", "stop:a"]);
}

#[actix::test]
async fn misuse_gives_typed_errors() {
    tokio::time::pause();
    let log = Log::default();
    let (_a, a) = child("a", &log).spawn();
    let (_a2, a2) = child("a", &log).spawn();
    let sup = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    sup.send(AddChild(a)).await.unwrap().unwrap();
    assert_eq!(
        sup.send(AddChild(a2)).await.unwrap(),
        Err(Error::DuplicateChild { id: "a".into() })
    );
    let unknown = Error::UnknownChild { id: "zz".into() };
    assert_eq!(
        sup.send(RemoveChild { id: "zz".into() }).await.unwrap(),
        Err(unknown.clone())
    );
    assert_eq!(
        sup.send(Restart { id: "zz".into() }).await.unwrap(),
        Err(unknown)
    );
    assert_eq!(
        Supervisor::new(SupervisorConfig::default())
            .unwrap()
            .with_child(child("q", &log).spawn().1)
            .unwrap()
            .with_child(child("q", &log).spawn().1)
            .unwrap_err()
            .to_string(),
        "duplicate child id `q`"
    );
    let mut bad = SupervisorConfig::default();
    bad.backoff.multiplier = 0.5;
    assert_eq!(
        Supervisor::new(bad).unwrap_err().to_string(),
        "invalid backoff.multiplier: must be finite and at least 1"
    );
}

#[actix::test]
async fn a_manual_restart_stops_and_starts_the_child() {
    tokio::time::pause();
    let log = Log::default();
    let (_a, a) = child("a", &log).spawn();
    let sup = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    sup.send(AddChild(a)).await.unwrap().unwrap();
    log.take();
    sup.send(Restart { id: "a".into() }).await.unwrap().unwrap();
    assert_eq!(log.take(), ["stop:a", "restart:a"]);
    let status = &sup.send(WhichChildren).await.unwrap()[0];
    assert_eq!(status.restarts, 1);
}
