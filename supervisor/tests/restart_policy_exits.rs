//! Each restart type after a normal and an abnormal exit.

mod support;

use std::time::Duration;

use pod_supervisor::{
    Backoff, ChildExit, ChildState, RestartPolicy, SupervisorConfig, SupervisorEvent, WhichChildren,
};
use support::{child, failed, is_restarted, supervise, Exit, Log};

/// Returns the log after the exit and the child's state (`None` if removed).
async fn exit_with(policy: RestartPolicy, exit: Exit) -> (Vec<String>, Option<ChildState>) {
    let log = Log::default();
    let (a, spec) = child("a", &log).spawn();
    let config = SupervisorConfig::default().with_backoff(Backoff::immediate());
    let (sup, mut events) = supervise(config, vec![spec.with_restart(policy)]).await;
    log.take();
    a.send(exit).await.unwrap();
    let exited = events
        .until(|e| {
            matches!(
                e,
                SupervisorEvent::ChildFailed { .. } | SupervisorEvent::ChildExited { .. }
            )
        })
        .await;
    let expect_restart = match (policy, &exited) {
        (_, SupervisorEvent::ChildFailed { cause, .. }) => {
            assert_eq!(cause, "boom");
            policy != RestartPolicy::Temporary
        }
        (_, SupervisorEvent::ChildExited { .. }) => policy == RestartPolicy::Permanent,
        (_, other) => panic!("unexpected {other:?}"),
    };
    if expect_restart {
        events.until(is_restarted("a")).await;
    } else {
        support::idle(Duration::from_secs(60)).await;
    }
    let children = sup.send(WhichChildren).await.unwrap();
    (log.take(), children.first().map(|c| c.state))
}

#[actix::test]
async fn permanent_restarts_after_normal_exit() {
    tokio::time::pause();
    let (log, state) = exit_with(RestartPolicy::Permanent, Exit(ChildExit::Normal)).await;
    assert_eq!(log, ["restart:a"]);
    assert_eq!(state, Some(ChildState::Running));
}

#[actix::test]
async fn permanent_restarts_after_failure() {
    tokio::time::pause();
    let (log, state) = exit_with(RestartPolicy::Permanent, failed("boom")).await;
    assert_eq!(log, ["restart:a"]);
    assert_eq!(state, Some(ChildState::Running));
}

#[actix::test]
async fn transient_stays_down_after_normal_exit() {
    tokio::time::pause();
    let (log, state) = exit_with(RestartPolicy::Transient, Exit(ChildExit::Normal)).await;
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(state, Some(ChildState::Exited));
}

#[actix::test]
async fn transient_restarts_after_failure() {
    tokio::time::pause();
    let (log, state) = exit_with(RestartPolicy::Transient, failed("boom")).await;
    assert_eq!(log, ["restart:a"]);
    assert_eq!(state, Some(ChildState::Running));
}

#[actix::test]
async fn temporary_is_removed_after_normal_exit() {
    tokio::time::pause();
    let (log, state) = exit_with(RestartPolicy::Temporary, Exit(ChildExit::Normal)).await;
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(state, None);
}

#[actix::test]
async fn temporary_is_removed_after_failure() {
    tokio::time::pause();
    let (log, state) = exit_with(RestartPolicy::Temporary, failed("boom")).await;
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(state, None);
}
