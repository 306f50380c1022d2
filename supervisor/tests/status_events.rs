//! Per-child statistics, event fan-out, and compile-time guarantees on the
//! public types.

mod support;

use std::time::Duration;

use actix::{Actor, ActorContext, Context, Handler};
use pod_supervisor::{
    Backoff, ChildState, ChildStatus, GetStatus, ShutdownReport, Subscribe, SupervisorConfig,
    SupervisorEvent, SupervisorStatus, WhichChildren,
};
use support::{child, failed, is_restarted, subscribe, supervise, Log};

#[actix::test]
async fn status_reports_restarts_cause_latency_and_uptime() {
    tokio::time::pause();
    let log = Log::default();
    let (a_addr, a) = child("a", &log).spawn();
    let (_b, b) = child("b", &log).spawn();
    let backoff =
        Backoff::new(Duration::from_millis(250), 2.0, Duration::from_secs(1)).with_jitter(0.0);
    let config = SupervisorConfig::default().with_backoff(backoff);
    let (sup, mut events) = supervise(config, vec![a, b]).await;
    a_addr.send(failed("disk full")).await.unwrap();
    events.until(is_restarted("a")).await;
    support::idle(Duration::from_secs(3)).await;

    let children = sup.send(WhichChildren).await.unwrap();
    let a = &children[0];
    assert_eq!((a.id.as_str(), a.state), ("a", ChildState::Running));
    assert_eq!((a.restarts, a.attempt), (1, 1));
    assert_eq!(a.last_cause.as_deref(), Some("disk full"));
    // Timers fire on millisecond ticks of the paused clock.
    let latency = a.last_restart_latency.unwrap();
    assert!(latency >= Duration::from_millis(250) && latency <= Duration::from_millis(251));
    let uptime = a.uptime.unwrap();
    assert!(uptime >= Duration::from_secs(3) && uptime <= Duration::from_millis(3_001));
    let b = &children[1];
    assert_eq!((b.restarts, b.last_cause.as_ref()), (0, None));
    assert_eq!(sup.send(GetStatus).await.unwrap().restarts_in_window, 1);
}

#[derive(Debug)]
struct StopsOnFirst;

impl Actor for StopsOnFirst {
    type Context = Context<Self>;
}

impl Handler<SupervisorEvent> for StopsOnFirst {
    type Result = ();

    fn handle(&mut self, _: SupervisorEvent, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[actix::test]
async fn events_reach_every_subscriber_and_dead_ones_are_dropped() {
    tokio::time::pause();
    let log = Log::default();
    let (a_addr, a) = child("a", &log).spawn();
    let config = SupervisorConfig::default().with_backoff(Backoff::immediate());
    let (sup, mut first) = supervise(config, vec![a]).await;
    let mut second = subscribe(&sup).await;
    sup.send(Subscribe(StopsOnFirst.start().recipient()))
        .await
        .unwrap();
    for _ in 0..2 {
        a_addr.send(failed("boom")).await.unwrap();
        first.until(is_restarted("a")).await;
        second.until(is_restarted("a")).await;
    }
    let expected = SupervisorEvent::ChildFailed {
        id: "a".into(),
        cause: "boom".into(),
    };
    a_addr.send(failed("boom")).await.unwrap();
    assert_eq!(first.next().await, expected);
    assert_eq!(second.next().await, expected);
}

#[test]
fn public_types_are_send_sync_and_serde() {
    fn send_sync<T: Send + Sync>() {}
    fn serde<T: serde::Serialize + serde::de::DeserializeOwned>() {}
    send_sync::<pod_supervisor::Error>();
    send_sync::<SupervisorConfig>();
    send_sync::<SupervisorEvent>();
    send_sync::<ChildStatus>();
    send_sync::<pod_supervisor::ChildSpec>();
    send_sync::<pod_supervisor::ChildReporter>();
    serde::<SupervisorEvent>();
    serde::<ChildStatus>();
    serde::<SupervisorStatus>();
    serde::<ShutdownReport>();
    serde::<SupervisorConfig>();
}

#[actix::test]
async fn a_child_subscriber_hears_about_its_child_and_the_give_up_only() {
    tokio::time::pause();
    let log = Log::default();
    let (a_addr, a) = child("a", &log).spawn();
    let (b_addr, b) = child("b", &log).spawn();
    let config = SupervisorConfig::default()
        .with_intensity(pod_supervisor::Intensity::new(1, Duration::from_secs(60)))
        .with_backoff(Backoff::immediate());
    let (sup, mut all) = supervise(config, vec![a, b]).await;
    let mut about_b = support::subscribe_child(&sup, "b").await;
    a_addr.send(failed("a broke")).await.unwrap();
    all.until(is_restarted("a")).await;
    b_addr.send(failed("b broke")).await.unwrap();
    all.until(support::is_gave_up).await;
    support::idle(Duration::from_secs(1)).await;
    let heard = about_b.ready_now();
    assert!(!heard.is_empty());
    assert!(
        heard.iter().all(|e| e.child().is_none_or(|id| id == "b")),
        "{heard:?}"
    );
    assert!(heard
        .iter()
        .any(|e| matches!(e, SupervisorEvent::ChildFailed { id, .. } if id == "b")));
    assert!(
        matches!(heard.last(), Some(SupervisorEvent::GaveUp { .. })),
        "{heard:?}"
    );
}
