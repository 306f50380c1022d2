//! Cases of OTP's own supervisor test suite (`lib/stdlib/test/supervisor_SUITE.erl`)
//! where this supervisor used to differ, ported to its API. Each test names
//! the OTP case it follows.

mod support;

use std::time::Duration;

use actix::Actor;
use pod_supervisor::{
    AddChild, Backoff, ChildSpec, ChildState, Error, GetStatus, Intensity, RemoveChild, Restart,
    StopOutcome, Supervisor, SupervisorConfig, SupervisorEvent, SupervisorPhase, WhichChildren,
};
use support::{child, failed, is_gave_up, is_restarted, subscribe, BecomeReady, Log};

fn config(max: u32) -> SupervisorConfig {
    SupervisorConfig::default()
        .with_intensity(Intensity::new(max, Duration::from_secs(60)))
        .with_backoff(Backoff::immediate())
}

/// `child_adm` and `sup_start_restart_child_returns_error`: a
/// `restart_child` whose start fails returns the error, leaves the child
/// stopped, and the supervisor carries on; it is not a crash to restart.
#[actix::test]
async fn otp_child_adm_a_failed_restart_leaves_the_child_stopped() {
    tokio::time::pause();
    let log = Log::default();
    let verdicts = Log::default();
    let (c_addr, c) = child("c", &log).manual_ready().verdicts(&verdicts).spawn();
    let sup = Supervisor::new(config(1)).unwrap().start();
    let mut events = subscribe(&sup).await;
    let (added, _) = tokio::join!(sup.send(AddChild(c)), async {
        support::idle(Duration::from_millis(10)).await;
        c_addr.send(BecomeReady).await.unwrap();
    });
    added.unwrap().unwrap();
    log.take();

    let (restarted, _) = tokio::join!(sup.send(Restart { id: "c".into() }), async {
        support::idle(Duration::from_millis(10)).await;
        c_addr.send(failed("bad config")).await.unwrap();
    });
    assert!(matches!(
        restarted.unwrap(),
        Err(Error::ChildFailedToStart { id, .. }) if id == "c"
    ));
    support::idle(Duration::from_secs(3600)).await;
    assert_eq!(log.take(), ["stop:c", "restart:c"], "restarted again");
    let status = sup.send(GetStatus).await.unwrap();
    assert_eq!(status.phase, SupervisorPhase::Running);
    assert_eq!(status.children[0].state, ChildState::Exited);
    assert_eq!(status.restarts_in_window, 0);
    assert!(!events.ready_now().iter().any(is_gave_up));
    assert!(
        verdicts
            .take()
            .iter()
            .any(|v| v.ends_with(":no-restart:FailedToStart")),
        "the child was not told"
    );
    // OTP: a stopped child can be restarted again by its owner.
    let (again, _) = tokio::join!(sup.send(Restart { id: "c".into() }), async {
        support::idle(Duration::from_millis(10)).await;
        c_addr.send(BecomeReady).await.unwrap();
    });
    again.unwrap().unwrap();
}

/// `tree`: when a parent restarts a subtree, the subtree starts from its
/// initial child list (OTP re-runs its `init`); children added to it at run
/// time are gone, and cannot hold up its restart.
#[actix::test]
async fn otp_tree_a_restarted_subtree_forgets_children_added_at_run_time() {
    tokio::time::pause();
    let log = Log::default();
    let verdicts = Log::default();
    let (x_addr, x) = child("x", &log).spawn();
    // Would never be ready again if it were restarted.
    let (d_addr, d) = child("d", &log).manual_ready().verdicts(&verdicts).spawn();
    let sub = Supervisor::new(config(1))
        .unwrap()
        .with_child(x)
        .unwrap()
        .supervised()
        .start();
    let mut sub_events = subscribe(&sub).await;
    let top = Supervisor::new(config(5)).unwrap().start();
    let mut top_events = subscribe(&top).await;
    top.send(AddChild(
        ChildSpec::new("sub", &sub).with_shutdown(Duration::from_secs(30)),
    ))
    .await
    .unwrap()
    .unwrap();
    let (added, _) = tokio::join!(sub.send(AddChild(d)), async {
        support::idle(Duration::from_millis(10)).await;
        d_addr.send(BecomeReady).await.unwrap();
    });
    added.unwrap().unwrap();
    log.take();

    x_addr.send(failed("boom")).await.unwrap();
    sub_events.until(is_restarted("x")).await;
    x_addr.send(failed("boom")).await.unwrap();
    sub_events.until(is_gave_up).await;
    top_events.until(is_restarted("sub")).await;

    let ids: Vec<_> = sub
        .send(WhichChildren)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["x"]);
    let entries = log.take();
    assert!(!entries.contains(&"restart:d".to_owned()), "{entries:?}");
    assert!(
        verdicts
            .take()
            .iter()
            .any(|v| v.ends_with(":no-restart:Removed")),
        "the forgotten child was not told"
    );
}

/// `child_adm` (`delete_child`) at scale: children removed in an order
/// other than their start order keep the others in start order.
#[actix::test]
async fn otp_child_adm_removals_in_any_order_keep_start_order() {
    tokio::time::pause();
    let log = Log::default();
    let sup = Supervisor::new(config(1)).unwrap().start();
    let mut addrs = Vec::new();
    for i in 0..200 {
        let (addr, spec) = child(&format!("c{i:03}"), &log).spawn();
        sup.send(AddChild(spec)).await.unwrap().unwrap();
        addrs.push(addr);
    }
    // Every third one, from the middle outwards.
    let mut gone: Vec<usize> = (0..200).filter(|i| i % 3 == 0).collect();
    gone.sort_by_key(|i| (*i as i64 - 100).abs());
    for i in &gone {
        let outcome = sup
            .send(RemoveChild {
                id: format!("c{i:03}"),
            })
            .await
            .unwrap();
        assert_eq!(outcome, Ok(StopOutcome::Gracefully));
    }
    let ids: Vec<_> = sup
        .send(WhichChildren)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let expected: Vec<_> = (0..200)
        .filter(|i| i % 3 != 0)
        .map(|i| format!("c{i:03}"))
        .collect();
    assert_eq!(ids, expected);
    let report = sup.send(pod_supervisor::Shutdown).await.unwrap();
    let order: Vec<_> = report.stopped.iter().map(|(id, _)| id.clone()).collect();
    let reversed: Vec<_> = expected.into_iter().rev().collect();
    assert_eq!(order, reversed);
}

/// `temporary_bystander` with a removal: removing a child is not an exit,
/// so a one-for-all sibling never sees it.
#[actix::test]
async fn otp_removal_is_not_an_exit_under_one_for_all() {
    tokio::time::pause();
    let log = Log::default();
    let (_a, a) = child("a", &log).spawn();
    let (_b, b) = child("b", &log).spawn();
    let sup = Supervisor::new(config(0).with_strategy(pod_supervisor::Strategy::OneForAll))
        .unwrap()
        .start();
    let mut events = subscribe(&sup).await;
    sup.send(AddChild(a)).await.unwrap().unwrap();
    sup.send(AddChild(b)).await.unwrap().unwrap();
    log.take();
    sup.send(RemoveChild { id: "b".into() })
        .await
        .unwrap()
        .unwrap();
    support::idle(Duration::from_secs(60)).await;
    assert_eq!(log.take(), ["stop:b"]);
    let seen = events.ready_now();
    assert!(
        !seen.iter().any(|e| matches!(
            e,
            SupervisorEvent::ChildFailed { .. }
                | SupervisorEvent::ChildRestarting { .. }
                | SupervisorEvent::GaveUp { .. }
        )),
        "{seen:?}"
    );
    assert_eq!(sup.send(GetStatus).await.unwrap().restarts_in_window, 0);
}
