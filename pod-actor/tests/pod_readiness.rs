//! Readiness: `Started` to subscribers, `WaitStartSuccess` and its outcomes,
//! `timeout_ready`.

mod support;

use std::time::Duration;

use pod_actor::{Close, GetStatus, Join, PodError, PodState, Start, Subscribe, WaitStartSuccess};
use runtime_actor::FailureCause;
use support::{config, pod, subscribe_started, Script, Setup};

#[actix::test]
async fn subscriber_before_start_receives_started_once() {
    tokio::time::pause();
    let script = Script::new(Setup::Sleep(Duration::from_millis(200)));
    let pod = pod(config("encoder"), &script);
    let mut started = subscribe_started(&pod).await;
    pod.send(Start).await.unwrap().unwrap();
    let first = started.next().await;
    assert_eq!(first.pod, "encoder");
    assert_eq!(first.generation, 0);
    assert_eq!(first.restarts, 0);
    assert!(first.startup >= Duration::from_millis(200), "{first:?}");
    support_idle().await;
    assert!(
        started.try_next().is_none(),
        "Started is sent once per generation"
    );
}

#[actix::test]
async fn late_subscriber_gets_the_current_started_at_once() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("encoder"), &script);
    pod.send(Start).await.unwrap().unwrap();
    let ready = pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let mut late = subscribe_started(&pod).await;
    assert_eq!(late.next().await, ready);
}

#[actix::test]
async fn subscriber_sees_the_next_generation_after_a_restart() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("encoder"), &script);
    let mut started = subscribe_started(&pod).await;
    pod.send(Start).await.unwrap().unwrap();
    assert_eq!(started.next().await.generation, 0);
    let _ = pod.send(pod_actor::Call(support::Req::Panic)).await;
    let second = started.next().await;
    assert_eq!((second.generation, second.restarts), (1, 1));
}

#[actix::test]
async fn two_subscribers_both_receive_and_a_dead_one_is_dropped() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("encoder"), &script);
    let mut a = subscribe_started(&pod).await;
    let mut b = subscribe_started(&pod).await;
    let dead = subscribe_started(&pod).await;
    drop(dead);
    pod.send(Start).await.unwrap().unwrap();
    assert_eq!(a.next().await.generation, 0);
    assert_eq!(b.next().await.generation, 0);
    // The pod holds subscribers weakly: once we drop ours, nothing keeps it
    // alive, and the next Started (after a restart) skips it without error.
    let weakly_held = subscribe_started(&pod).await;
    let weak = weakly_held.probe.downgrade();
    let recipient = weakly_held.probe.clone().recipient();
    drop(weakly_held);
    pod.send(Subscribe(recipient)).await.unwrap();
    tokio::task::yield_now().await;
    assert!(weak.upgrade().is_none(), "the pod kept a subscriber alive");
    let _ = pod.send(pod_actor::Call(support::Req::Panic)).await;
    assert_eq!(a.next().await.generation, 1);
    assert_eq!(b.next().await.generation, 1);
    let status = pod.send(GetStatus).await.unwrap();
    assert_eq!(status.state, PodState::Running);
}

#[actix::test]
async fn three_concurrent_waiters_all_get_the_answer() {
    tokio::time::pause();
    let script = Script::new(Setup::Sleep(Duration::from_secs(2)));
    let pod = pod(config("encoder"), &script);
    pod.send(Start).await.unwrap().unwrap();
    let (a, b, c) = tokio::join!(
        pod.send(WaitStartSuccess),
        pod.send(WaitStartSuccess),
        pod.send(WaitStartSuccess)
    );
    let (a, b, c) = (
        a.unwrap().unwrap(),
        b.unwrap().unwrap(),
        c.unwrap().unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(b, c);
}

#[actix::test]
async fn a_start_timeout_closes_the_pod_then_returns_timeout() {
    tokio::time::pause();
    let script = Script::new(Setup::Sleep(Duration::from_secs(3600)));
    let mut config = config("slow-encoder");
    config.timeout_ready = 1000;
    let pod = pod(config, &script);
    pod.send(Start).await.unwrap().unwrap();
    match pod.send(WaitStartSuccess).await.unwrap() {
        Err(PodError::Timeout { after, .. }) => {
            assert!(after >= Duration::from_secs(1) && after < Duration::from_millis(1010))
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // Closed before the error was returned: terminated and joinable now.
    assert_eq!(
        pod.send(GetStatus).await.unwrap().state,
        PodState::Terminated
    );
    assert!(matches!(
        pod.send(Join).await.unwrap(),
        Err(PodError::Timeout { .. })
    ));
    // Stopped the graceful way: the interrupted setup was torn down.
    assert_eq!(
        script.teardowns.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[actix::test]
async fn timeout_ready_minus_one_and_zero_wait_for_ever() {
    tokio::time::pause();
    for timeout_ready in [-1, 0] {
        let script = Script::new(Setup::Sleep(Duration::from_secs(3 * 3600)));
        let mut config = config("patient");
        config.timeout_ready = timeout_ready;
        let pod = pod(config, &script);
        pod.send(Start).await.unwrap().unwrap();
        let started = pod.send(WaitStartSuccess).await.unwrap().unwrap();
        assert!(started.startup >= Duration::from_secs(3 * 3600));
    }
}

#[actix::test]
async fn a_failure_before_ready_fails_the_start_with_its_cause() {
    tokio::time::pause();
    let script = Script::new(Setup::Fail);
    let pod = pod(config("encoder"), &script);
    pod.send(Start).await.unwrap().unwrap();
    match pod.send(WaitStartSuccess).await.unwrap() {
        Err(PodError::FailedToStart {
            cause: FailureCause::Error(e),
        }) => assert_eq!(e.message(), "model file missing"),
        other => panic!("expected FailedToStart, got {other:?}"),
    }
    let status = pod.send(GetStatus).await.unwrap();
    assert_eq!(status.state, PodState::Terminated);
    assert_eq!(status.restarts, 0, "no restart after a failed start");
    // A later waiter gets the same answer.
    assert!(matches!(
        pod.send(WaitStartSuccess).await.unwrap(),
        Err(PodError::FailedToStart { .. })
    ));
}

#[actix::test]
async fn a_panic_in_setup_fails_the_start_with_message_and_location() {
    tokio::time::pause();
    let script = Script::new(Setup::Panic);
    let pod = pod(config("encoder"), &script);
    pod.send(Start).await.unwrap().unwrap();
    match pod.send(WaitStartSuccess).await.unwrap() {
        Err(PodError::FailedToStart {
            cause: FailureCause::Panicked { message, location },
        }) => {
            assert_eq!(message, "executor __init__ raised");
            assert!(location.unwrap().file.ends_with("support/mod.rs"));
        }
        other => panic!("expected FailedToStart with a panic, got {other:?}"),
    }
}

#[actix::test]
async fn on_start_failure_restarts_a_start_that_failed() {
    tokio::time::pause();
    let script = Script::failing_first(2);
    let mut config = config("retrying");
    config.restart.on_start_failure = true;
    let pod = pod(config, &script);
    pod.send(Start).await.unwrap().unwrap();
    let started = pod.send(WaitStartSuccess).await.unwrap().unwrap();
    assert_eq!((started.generation, started.restarts), (2, 2));
}

#[actix::test]
async fn close_during_start_resolves_the_start_as_closed_and_tears_down_issue_10() {
    tokio::time::pause();
    let script = Script::new(Setup::Sleep(Duration::from_secs(3600)));
    let pod = pod(config("encoder"), &script);
    pod.send(Start).await.unwrap().unwrap();
    let waiter = pod.send(WaitStartSuccess);
    let close = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        pod.send(Close::default()).await.unwrap()
    };
    let (waited, report) = tokio::join!(waiter, close);
    assert!(matches!(waited.unwrap(), Err(PodError::Closed)));
    assert!(report.graceful() && !report.stuck, "{report:?}");
    // The start is stopped through the graceful path: teardown undoes what
    // setup had done (for a process, SIGTERM instead of SIGKILL).
    assert_eq!(
        script.teardowns.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[actix::test]
async fn wait_before_start_is_answered_not_started() {
    let script = Script::new(Setup::Ok);
    let pod = pod(config("encoder"), &script);
    assert!(matches!(
        pod.send(WaitStartSuccess).await.unwrap(),
        Err(PodError::NotStarted)
    ));
}

async fn support_idle() {
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// The status gives the running generation's `uptime`, and `since`, the
/// wall-clock time that is `uptime` before the status was taken; none
/// once the pod stops serving.
#[actix::test]
async fn the_status_says_since_when_by_the_wall_clock_uptime_before() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("encoder"), &script);
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    tokio::time::advance(Duration::from_secs(90)).await;
    let before = std::time::SystemTime::now();
    let status = pod.send(GetStatus).await.unwrap();
    let after = std::time::SystemTime::now();
    let uptime = status.uptime.expect("running");
    assert!(uptime >= Duration::from_secs(90), "{uptime:?}");
    let taken = status.since.expect("running") + uptime;
    assert!(before <= taken && taken <= after, "{status:?}");
    pod.send(Close::default()).await.unwrap();
    let status = pod.send(GetStatus).await.unwrap();
    assert_eq!((status.uptime, status.since), (None, None));
}
