//! `StartAndWait`: `Start` and `WaitStartSuccess` in one message, with the
//! answers of both.

mod support;

use std::time::Duration;

use pod_actor::{
    Close, GetStatus, PodError, PodState, Start, StartAndWait, Started, WaitStartSuccess,
};
use runtime_actor::FailureCause;
use support::{config, pod, subscribe_started, Script, Setup};

#[actix::test]
async fn it_answers_with_the_first_started_once_setup_is_done() {
    tokio::time::pause();
    let script = Script::new(Setup::Sleep(Duration::from_millis(300)));
    let pod = pod(config("encoder"), &script);
    let mut subscribed = subscribe_started(&pod).await;
    let started = pod.send(StartAndWait).await.unwrap().unwrap();
    assert_eq!((started.pod.as_str(), started.generation), ("encoder", 0));
    assert!(started.startup >= Duration::from_millis(300), "{started:?}");
    // The same Started as everyone else's, and the pod is running.
    assert_eq!(subscribed.next().await, started);
    assert_eq!(pod.send(WaitStartSuccess).await.unwrap().unwrap(), started);
    assert_eq!(pod.send(GetStatus).await.unwrap().state, PodState::Running);
}

#[actix::test]
async fn waiters_sent_beside_it_get_the_same_answer() {
    tokio::time::pause();
    let script = Script::new(Setup::Sleep(Duration::from_secs(2)));
    let pod = pod(config("encoder"), &script);
    let (own, other) = tokio::join!(pod.send(StartAndWait), pod.send(WaitStartSuccess));
    let own: Started = own.unwrap().unwrap();
    assert_eq!(other.unwrap().unwrap(), own);
}

#[actix::test]
async fn a_second_one_is_refused_as_a_second_start_is() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let running = pod(config("encoder"), &script);
    running.send(StartAndWait).await.unwrap().unwrap();
    assert!(matches!(
        running.send(StartAndWait).await.unwrap(),
        Err(PodError::AlreadyStarted)
    ));
    // Also while the first one still waits.
    let slow = pod(
        config("slow"),
        &Script::new(Setup::Sleep(Duration::from_secs(1))),
    );
    let (first, second) = tokio::join!(slow.send(StartAndWait), slow.send(StartAndWait));
    assert_eq!(first.unwrap().unwrap().pod, "slow");
    assert!(matches!(second.unwrap(), Err(PodError::AlreadyStarted)));
    // And after a plain Start.
    let plain = pod(config("plain"), &Script::new(Setup::Ok));
    plain.send(Start).await.unwrap().unwrap();
    assert!(matches!(
        plain.send(StartAndWait).await.unwrap(),
        Err(PodError::AlreadyStarted)
    ));
}

#[actix::test]
async fn a_closed_pod_answers_closed_and_starts_nothing() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("encoder"), &script);
    pod.send(Close::default()).await.unwrap();
    assert!(matches!(
        pod.send(StartAndWait).await.unwrap(),
        Err(PodError::Closed)
    ));
    assert_eq!(script.live(), 0);
    assert_eq!(script.built.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[actix::test]
async fn a_failed_setup_answers_failed_to_start_with_its_cause() {
    tokio::time::pause();
    let script = Script::new(Setup::Fail);
    let pod = pod(config("encoder"), &script);
    match pod.send(StartAndWait).await.unwrap() {
        Err(PodError::FailedToStart {
            cause: FailureCause::Error(e),
        }) => assert_eq!(e.message(), "model file missing"),
        other => panic!("expected FailedToStart, got {other:?}"),
    }
    assert_eq!(
        pod.send(GetStatus).await.unwrap().state,
        PodState::Terminated
    );
}

#[actix::test]
async fn a_start_past_timeout_ready_answers_timeout_after_the_close() {
    tokio::time::pause();
    let script = Script::new(Setup::Sleep(Duration::from_secs(3600)));
    let mut config = config("slow-encoder");
    config.timeout_ready = 1000;
    let pod = pod(config, &script);
    match pod.send(StartAndWait).await.unwrap() {
        Err(PodError::Timeout { after, .. }) => assert!(after >= Duration::from_secs(1)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        pod.send(GetStatus).await.unwrap().state,
        PodState::Terminated
    );
    assert_eq!(script.live(), 0, "the runtime was left running");
}

#[actix::test]
async fn sent_without_awaiting_its_answer_it_still_starts_the_pod() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("encoder"), &script);
    pod.do_send(StartAndWait);
    let started = pod.send(WaitStartSuccess).await.unwrap().unwrap();
    assert_eq!(started.generation, 0);
}
