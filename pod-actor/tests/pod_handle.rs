//! The blocking facade, from a plain thread (Jina's synchronous API).

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use pod_actor::{PlacementKind, PodError, PodHandle, PodRole, PodState};
use support::{config, factory, Req, Script, Setup};

fn dedicated(name: &str) -> pod_actor::PodConfig {
    let mut config = config(name);
    config.placement = PlacementKind::Dedicated;
    config
}

#[test]
fn start_wait_call_close_join_from_a_plain_thread() {
    let script = Script::new(Setup::Ok);
    let pod = PodHandle::spawn(dedicated("executor0"), factory(&script)).unwrap();
    assert_eq!(pod.role(), PodRole::Worker);
    pod.start().unwrap();
    let started = pod.wait_start_success().unwrap();
    assert_eq!(started.generation, 0);
    assert_eq!(pod.call(Req::Echo(5)).unwrap(), "5");
    assert_eq!(pod.status().unwrap().state, PodState::Running);
    assert!(pod.close().graceful());
    pod.join(Some(Duration::from_secs(30))).unwrap().unwrap();
    assert_eq!(script.teardowns.load(Ordering::SeqCst), 1);
}

#[test]
fn join_with_a_timeout_gives_up_on_a_running_pod() {
    let script = Script::new(Setup::Ok);
    let pod = PodHandle::spawn(dedicated("executor0"), factory(&script)).unwrap();
    pod.start().unwrap();
    pod.wait_start_success().unwrap();
    let timed_out = pod.join(Some(Duration::from_millis(20))).unwrap_err();
    assert_eq!(timed_out.after, Duration::from_millis(20));
    assert_eq!(pod.status().unwrap().state, PodState::Running);
}

#[test]
fn a_failed_start_is_an_error_with_its_cause() {
    let script = Script::new(Setup::Fail);
    let pod = PodHandle::spawn(dedicated("executor0"), factory(&script)).unwrap();
    pod.start().unwrap();
    let err = pod.wait_start_success().unwrap_err();
    assert!(matches!(err, PodError::FailedToStart { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "runtime failed to start: error: model file missing"
    );
}

#[test]
fn start_and_wait_blocks_until_started_or_says_why_not() {
    let script = Script::new(Setup::Ok);
    let pod = PodHandle::spawn(dedicated("executor0"), factory(&script)).unwrap();
    let started = pod.start_and_wait().unwrap();
    assert_eq!(started, pod.wait_start_success().unwrap());
    assert_eq!(pod.status().unwrap().state, PodState::Running);
    assert!(matches!(
        pod.start_and_wait(),
        Err(PodError::AlreadyStarted)
    ));
    let failing = Script::new(Setup::Fail);
    let pod = PodHandle::spawn(dedicated("executor1"), factory(&failing)).unwrap();
    let err = pod.start_and_wait().unwrap_err();
    assert!(matches!(err, PodError::FailedToStart { .. }), "{err:?}");
}

#[test]
fn dropping_the_handle_closes_the_pod() {
    let script = Script::new(Setup::Ok);
    let pod = PodHandle::spawn(dedicated("executor0"), factory(&script)).unwrap();
    pod.start().unwrap();
    pod.wait_start_success().unwrap();
    drop(pod);
    assert_eq!(script.teardowns.load(Ordering::SeqCst), 1);
}
