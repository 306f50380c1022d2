//! Orders of messages found by attacking lifecycle v2 (issue 10): a restart
//! cycle whose member ends for good, an owner's restart racing a removal,
//! and a child whose actor is gone before it is started.

mod support;

use std::time::Duration;

use actix::Actor;
use pod_supervisor::{
    AddChild, Backoff, ChildExit, ChildLeft, ChildSpec, Error, GetStatus, Intensity, RemoveChild,
    Restart, RestartPolicy, Strategy, Supervisor, SupervisorConfig, SupervisorEvent,
};
use support::{child, failed, subscribe, BecomeReady, Exit, Log};

#[actix::test]
async fn a_cycle_member_that_ends_for_good_does_not_strand_the_others() {
    tokio::time::pause();
    let log = Log::default();
    let (a_addr, a) = child("a", &log).manual_ready().spawn();
    let (b_addr, b) = child("b", &log).spawn();
    let sup = Supervisor::new(
        SupervisorConfig::default()
            .with_strategy(Strategy::OneForAll)
            .with_backoff(Backoff::immediate()),
    )
    .unwrap()
    .start();
    let (added, _) = tokio::join!(
        sup.send(AddChild(a.with_restart(RestartPolicy::Transient))),
        async {
            support::idle(Duration::from_millis(1)).await;
            a_addr.send(BecomeReady).await.unwrap();
        }
    );
    added.unwrap().unwrap();
    sup.send(AddChild(b)).await.unwrap().unwrap();
    log.take();
    // b fails: the cycle stops a, restarts a (not ready yet), then b.
    b_addr.send(failed("boom")).await.unwrap();
    support::idle(Duration::from_millis(10)).await;
    assert_eq!(log.take(), ["stop:a", "restart:a"]);
    // a, transient, exits normally before it is ready: it is done for good,
    // but b is still part of the cycle.
    a_addr.send(Exit(ChildExit::Normal)).await.unwrap();
    support::idle(Duration::from_secs(60)).await;
    assert_eq!(log.take(), ["restart:b"]);
}

#[actix::test]
async fn an_owner_restart_racing_a_removal_says_the_child_was_removed() {
    tokio::time::pause();
    let log = Log::default();
    let (_a, a) = child("a", &log).spawn();
    let sup = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    sup.send(AddChild(a)).await.unwrap().unwrap();
    let (restart, remove) = tokio::join!(
        sup.send(Restart { id: "a".into() }),
        sup.send(RemoveChild { id: "a".into() })
    );
    assert_eq!(
        restart.unwrap(),
        Err(Error::ChildRemoved { id: "a".into() })
    );
    assert!(remove.unwrap().is_ok());
    assert!(sup.send(GetStatus).await.unwrap().children.is_empty());
}

#[actix::test]
async fn a_child_gone_before_its_start_is_forgotten_not_counted() {
    tokio::time::pause();
    let log = Log::default();
    let (_a, a) = child("a", &log).spawn();
    let sup = Supervisor::new(
        SupervisorConfig::default()
            .with_strategy(Strategy::OneForAll)
            .with_intensity(Intensity::new(0, Duration::from_secs(60)))
            .with_backoff(Backoff::immediate()),
    )
    .unwrap()
    .start();
    let mut events = subscribe(&sup).await;
    sup.send(AddChild(a)).await.unwrap().unwrap();
    log.take();
    // A child held weakly whose actor is gone by the time it is started.
    let (gone_addr, gone) = child("gone", &log).spawn();
    let spec = ChildSpec::weak(gone.id(), &gone_addr).with_restart_on_start_failure(true);
    drop((gone, gone_addr));
    support::idle(Duration::from_millis(1)).await;
    let _ = sup.send(AddChild(spec)).await.unwrap();
    support::idle(Duration::from_secs(10)).await;
    let status = sup.send(GetStatus).await.unwrap();
    assert_eq!(status.restarts_in_window, 0);
    let ids: Vec<_> = status.children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a"]);
    assert!(log.take().is_empty(), "the sibling was touched");
    let seen = events.ready_now();
    assert!(
        !seen.iter().any(|e| matches!(
            e,
            SupervisorEvent::ChildFailed { .. } | SupervisorEvent::GaveUp { .. }
        )),
        "{seen:?}"
    );
}

#[actix::test]
async fn a_spec_lost_with_a_stopped_supervisor_tells_its_child() {
    tokio::time::pause();
    let log = Log::default();
    let verdicts = Log::default();
    let (_c, spec) = child("c", &log).verdicts(&verdicts).spawn();
    // A copy never tells; the spec itself, dropped unread (as a stopped
    // supervisor's mailbox drops it), does.
    let telling = spec.clone().tell_if_lost();
    drop(telling.clone());
    support::idle(Duration::from_millis(1)).await;
    assert!(verdicts.take().is_empty());
    drop(telling);
    support::idle(Duration::from_millis(1)).await;
    assert_eq!(
        verdicts.take(),
        ["verdict:c@0:no-restart:Refused(ShuttingDown)"]
    );
    // A spec the supervisor took does not tell.
    let sup = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    sup.send(AddChild(spec.tell_if_lost()))
        .await
        .unwrap()
        .unwrap();
    support::idle(Duration::from_millis(1)).await;
    assert!(verdicts.take().is_empty());
}

#[actix::test]
async fn a_late_child_left_never_removes_a_newer_child_of_the_same_id() {
    tokio::time::pause();
    let log = Log::default();
    let (_old, old) = child("c", &log).spawn();
    let (_new, new) = child("c", &log).spawn();
    let (old_registration, new_registration) = (old.registration(), new.registration());
    assert_ne!(old_registration, new_registration);
    let sup = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    sup.send(AddChild(old)).await.unwrap().unwrap();
    sup.send(RemoveChild { id: "c".into() })
        .await
        .unwrap()
        .unwrap();
    sup.send(AddChild(new)).await.unwrap().unwrap();
    sup.send(ChildLeft {
        id: "c".into(),
        registration: old_registration,
    })
    .await
    .unwrap();
    assert_eq!(sup.send(GetStatus).await.unwrap().children.len(), 1);
    sup.send(ChildLeft {
        id: "c".into(),
        registration: new_registration,
    })
    .await
    .unwrap();
    assert!(sup.send(GetStatus).await.unwrap().children.is_empty());
}
