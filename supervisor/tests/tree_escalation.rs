//! A two-level tree: a subtree that gives up is restarted by its parent, and
//! gives up the parent in turn once the parent's own limit is passed.

mod support;

use std::time::Duration;

use actix::Actor;
use pod_supervisor::{
    AddChild, Backoff, ChildSpec, ChildState, Intensity, Supervisor, SupervisorConfig,
    SupervisorEvent, WhichChildren,
};
use support::{child, failed, is_gave_up, is_restarted, subscribe, Log};

fn config(max: u32) -> SupervisorConfig {
    SupervisorConfig::default()
        .with_intensity(Intensity::new(max, Duration::from_secs(60)))
        .with_backoff(Backoff::immediate())
}

#[actix::test]
async fn a_subtree_that_gives_up_escalates_through_its_parent() {
    tokio::time::pause();
    let log = Log::default();
    let (x_addr, x) = child("x", &log).spawn();
    let (_y, y) = child("y", &log).spawn();
    let sub = Supervisor::new(config(1))
        .unwrap()
        .with_child(x)
        .unwrap()
        .with_child(y)
        .unwrap()
        .supervised()
        .start();
    let mut sub_events = subscribe(&sub).await;
    // A supervised subtree waits for its parent.
    support::idle(Duration::from_secs(1)).await;
    assert!(log.take().is_empty());

    let top = Supervisor::new(config(1)).unwrap().start();
    let mut top_events = subscribe(&top).await;
    let spec = ChildSpec::new("sub", &sub).with_shutdown(Duration::from_secs(30));
    top.send(AddChild(spec)).await.unwrap().unwrap();
    assert_eq!(log.take(), ["start:x", "start:y"]);

    // x fails twice: the subtree's limit (1 in 60 s) is passed.
    x_addr.send(failed("boom")).await.unwrap();
    sub_events.until(is_restarted("x")).await;
    x_addr.send(failed("boom")).await.unwrap();
    sub_events.until(is_gave_up).await;
    let failure = top_events
        .until(|e| matches!(e, SupervisorEvent::ChildFailed { .. }))
        .await;
    let SupervisorEvent::ChildFailed { id, cause } = failure else {
        unreachable!()
    };
    assert_eq!(id, "sub");
    assert!(
        cause.starts_with("gave up: more than 1 restarts"),
        "{cause}"
    );
    // The parent restarts the subtree, which restarts its children in order.
    top_events.until(is_restarted("sub")).await;
    assert_eq!(
        log.take(),
        ["restart:x", "stop:y", "restart:x", "restart:y"]
    );
    let children = top.send(WhichChildren).await.unwrap();
    assert_eq!(
        (children[0].restarts, children[0].state),
        (1, ChildState::Running)
    );

    // The subtree gives up again: the parent's own limit is passed too.
    x_addr.send(failed("boom")).await.unwrap();
    sub_events.until(is_restarted("x")).await;
    x_addr.send(failed("boom")).await.unwrap();
    sub_events.until(is_gave_up).await;
    let SupervisorEvent::GaveUp { restarts, .. } = top_events.until(is_gave_up).await else {
        unreachable!()
    };
    assert_eq!(restarts, 2);
    assert!(top.send(WhichChildren).await.is_err(), "top-level stops");
    assert_eq!(log.take(), ["restart:x", "stop:y"]);
}

#[actix::test]
async fn stopping_a_subtree_stops_its_children_in_reverse_order() {
    tokio::time::pause();
    let log = Log::default();
    let (_x, x) = child("x", &log).spawn();
    let (_y, y) = child("y", &log).spawn();
    let (_z, z) = child("z", &log).spawn();
    let sub = Supervisor::new(config(1))
        .unwrap()
        .with_child(y)
        .unwrap()
        .supervised()
        .start();
    let top = Supervisor::new(config(1)).unwrap().start();
    top.send(AddChild(x)).await.unwrap().unwrap();
    top.send(AddChild(ChildSpec::new("sub", &sub)))
        .await
        .unwrap()
        .unwrap();
    top.send(AddChild(z)).await.unwrap().unwrap();
    assert_eq!(log.take(), ["start:x", "start:y", "start:z"]);
    let report = top.send(pod_supervisor::Shutdown).await.unwrap();
    let order: Vec<_> = report.stopped.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(order, ["z", "sub", "x"]);
    assert_eq!(log.take(), ["stop:z", "stop:y", "stop:x"]);
}
