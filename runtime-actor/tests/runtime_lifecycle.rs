//! Start, readiness, requests and graceful stop of a runtime generation.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::Arbiter;
use runtime_actor::{
    FailureCause, Placement, RequestError, RuntimeActor, RuntimeEnv, RuntimeEvent,
};
use support::{config, spawn_dedicated, spawn_here, Req, Script, Step};

const STOP: Duration = Duration::from_secs(5);

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<runtime_actor::RuntimeHandle<support::Scripted>>();
    assert_send_sync::<runtime_actor::RuntimeEvent>();
    assert_send_sync::<runtime_actor::RequestError>();
    assert_send_sync::<runtime_actor::RuntimeFactory<support::Scripted>>();
    assert_send_sync::<runtime_actor::FailureReporter>();
    assert_send_sync::<runtime_actor::RuntimeConfig>();
}

#[actix::test]
async fn ready_is_reported_once_per_generation() {
    tokio::time::pause();
    let script = Script::default();
    for generation in 0..3 {
        let (runtime, mut events) = spawn_here(script.clone(), config().generation(generation));
        assert_eq!(events.ready().await, generation);
        assert_eq!(runtime.call(Req::Echo(1)).await.unwrap(), "1");
        let report = runtime.stop(STOP).await;
        assert!(report.graceful() && !report.stuck, "{report:?}");
        assert!(events.exited().await.is_none());
        assert!(events.try_next().is_none(), "nothing after Exited");
    }
    assert_eq!(script.calls.built.load(Ordering::SeqCst), 3);
    assert_eq!(script.calls.setups.load(Ordering::SeqCst), 3);
    assert_eq!(script.calls.teardowns.load(Ordering::SeqCst), 3);
}

#[actix::test]
async fn dedicated_runtime_serves_on_another_thread() {
    let (runtime, mut events) = spawn_dedicated(Script::default(), config());
    events.ready().await;
    assert_eq!(runtime.call(Req::Echo(42)).await.unwrap(), "42");
    let report = runtime.stop(STOP).await;
    assert!(report.graceful(), "{report:?}");
    assert!(events.exited().await.is_none());
    assert!(runtime.has_exited());
}

#[actix::test]
async fn ready_event_carries_the_setup_time() {
    tokio::time::pause();
    let script = Script {
        setup: Step::Sleep(Duration::from_millis(250)),
        ..Script::default()
    };
    let (_runtime, mut events) = spawn_here(script, config());
    match events.next().await {
        RuntimeEvent::Ready { setup, .. } => assert!(setup >= Duration::from_millis(250)),
        other => panic!("expected Ready, got {other:?}"),
    }
}

#[actix::test]
async fn the_pod_env_reaches_factory_and_runtime_without_touching_the_process() {
    let env: RuntimeEnv = [("MODEL", "resnet"), ("JINA_DEPLOYMENT_NAME", "encoder")]
        .into_iter()
        .collect();
    let (runtime, mut events) = spawn_dedicated(Script::default(), config().env(env));
    events.ready().await;
    let answer = runtime
        .call(Req::Env("JINA_DEPLOYMENT_NAME"))
        .await
        .unwrap();
    assert_eq!(answer, "encoder|resnet");
    assert!(std::env::var_os("JINA_DEPLOYMENT_NAME").is_none());
    assert!(std::env::var_os("MODEL").is_none());
    runtime.stop(STOP).await;
}

#[actix::test]
async fn requests_before_ready_are_answered_not_ready() {
    tokio::time::pause();
    let script = Script {
        setup: Step::Sleep(Duration::from_secs(10)),
        ..Script::default()
    };
    let (runtime, mut events) = spawn_here(script.clone(), config());
    let early = runtime.call(Req::Echo(1)).await;
    assert!(matches!(early, Err(RequestError::NotReady)), "{early:?}");
    let health = runtime.check_health(Duration::from_secs(1)).await;
    assert!(matches!(health, Err(RequestError::NotReady)), "{health:?}");
    events.ready().await;
    assert_eq!(runtime.call(Req::Echo(2)).await.unwrap(), "2");
    assert_eq!(script.calls.handled.load(Ordering::SeqCst), 1);
}

#[actix::test]
async fn plain_errors_answer_the_request_and_keep_the_runtime() {
    tokio::time::pause();
    let (runtime, mut events) = spawn_here(Script::default(), config());
    events.ready().await;
    let answer = runtime.call(Req::Fail).await;
    match answer {
        Err(RequestError::Runtime(e)) => {
            assert_eq!(e.message(), "bad input");
            assert!(!e.is_fatal());
        }
        other => panic!("expected the runtime's error, got {other:?}"),
    }
    assert_eq!(runtime.call(Req::Echo(3)).await.unwrap(), "3");
    assert!(events.try_next().is_none(), "no failure reported");
}

#[actix::test]
async fn queued_requests_are_answered_before_teardown() {
    tokio::time::pause();
    let script = Script::default();
    let (runtime, mut events) = spawn_here(script.clone(), config());
    events.ready().await;
    let slow = runtime.call(Req::Sleep(Duration::from_secs(2)));
    let queued = runtime.call(Req::Echo(7));
    let stop = runtime.stop(STOP);
    let (slow, queued, report) = tokio::join!(slow, queued, stop);
    assert_eq!(slow.unwrap(), "slept");
    assert_eq!(queued.unwrap(), "7");
    assert!(report.graceful(), "{report:?}");
    assert_eq!(script.calls.teardowns.load(Ordering::SeqCst), 1);
}

#[actix::test]
async fn requests_after_a_stop_are_refused_as_stopping() {
    tokio::time::pause();
    let script = Script {
        teardown: Step::Sleep(Duration::from_secs(1)),
        ..Script::default()
    };
    let (runtime, mut events) = spawn_here(script, config());
    events.ready().await;
    let stop = runtime.stop(STOP);
    let late = async {
        tokio::task::yield_now().await;
        runtime.call(Req::Echo(1)).await
    };
    let (report, late) = tokio::join!(stop, late);
    assert!(report.graceful(), "{report:?}");
    assert!(matches!(late, Err(RequestError::Stopping)), "{late:?}");
}

#[actix::test]
async fn stop_during_setup_abandons_setup_then_runs_teardown_issue_10() {
    tokio::time::pause();
    let script = Script {
        setup: Step::Pending,
        ..Script::default()
    };
    let (runtime, mut events) = spawn_here(script.clone(), config());
    let report = runtime.stop(STOP).await;
    assert!(report.graceful() && report.cause.is_none(), "{report:?}");
    assert!(events.exited().await.is_none());
    assert_eq!(script.calls.setups.load(Ordering::SeqCst), 1);
    // What setup had done is undone the graceful way (a child process gets
    // its SIGTERM), not dropped.
    assert_eq!(script.calls.teardowns.load(Ordering::SeqCst), 1);
}

#[actix::test]
async fn stopping_an_ended_runtime_returns_at_once() {
    tokio::time::pause();
    let (runtime, mut events) = spawn_here(Script::default(), config());
    events.ready().await;
    runtime.stop(STOP).await;
    let again = runtime.stop(STOP).await;
    assert!(again.graceful() && !again.stuck);
    assert_eq!(again.took, Duration::ZERO);
    let after = runtime.call(Req::Echo(1)).await;
    assert!(
        matches!(after, Err(RequestError::Exited { cause: None })),
        "{after:?}"
    );
}

#[actix::test]
async fn an_arbiter_stopped_under_the_runtime_is_reported_lost() {
    let arbiter = Arbiter::new();
    let (watcher, mut events) = support::watcher();
    let runtime = RuntimeActor::spawn(
        config()
            .placement(Placement::Shared(arbiter.handle()))
            .watcher(watcher),
        support::factory(Script::default()),
    );
    events.ready().await;
    arbiter.stop();
    assert!(matches!(events.failed().await, FailureCause::Lost));
    assert!(matches!(events.exited().await, Some(FailureCause::Lost)));
    assert!(matches!(runtime.failure(), Some(FailureCause::Lost)));
    let _ = std::thread::spawn(move || arbiter.join()).join();
}

#[actix::test]
async fn ready_resolves_with_the_setup_time_or_the_failure() {
    tokio::time::pause();
    let slow = Script {
        setup: Step::Sleep(Duration::from_millis(300)),
        ..Script::default()
    };
    let (runtime, _events) = spawn_here(slow, config());
    let setup = runtime.ready().await.unwrap();
    assert!(setup >= Duration::from_millis(300), "{setup:?}");
    assert!(runtime.ready().await.is_ok(), "a late waiter sees it too");

    let failing = Script {
        setup: Step::Fail,
        ..Script::default()
    };
    let (runtime, _events) = spawn_here(failing, config());
    let outcome = runtime.ready().await;
    assert!(
        matches!(
            outcome,
            Err(RequestError::Exited {
                cause: Some(FailureCause::Error(_))
            })
        ),
        "{outcome:?}"
    );
}

#[actix::test]
async fn a_runtime_on_the_current_arbiter_starts_in_place_and_lives_as_any_other() {
    tokio::time::pause();
    let script = Script::default();
    let (watcher, mut events) = support::watcher();
    let runtime = RuntimeActor::spawn(
        config().placement(Placement::Current).watcher(watcher),
        support::factory(script.clone()),
    );
    // Started in place: the actor's mailbox is open before anything ran.
    assert!(runtime.addr().connected());
    events.ready().await;
    assert_eq!(runtime.call(Req::Echo(4)).await.unwrap(), "4");
    assert!(runtime.stop(STOP).await.graceful());
    assert!(events.exited().await.is_none());
    assert_eq!(script.calls.built.load(Ordering::SeqCst), 1);
}

#[actix::test]
async fn a_runtime_needs_no_watcher() {
    tokio::time::pause();
    let runtime = RuntimeActor::spawn(
        config().placement(Placement::Shared(Arbiter::current())),
        support::factory(Script::default()),
    );
    runtime.ready().await.unwrap();
    assert_eq!(runtime.call(Req::Echo(9)).await.unwrap(), "9");
    assert!(runtime.stop(STOP).await.graceful());
    assert!(runtime.has_exited());
}

#[actix::test]
async fn a_call_made_before_a_stop_is_answered_before_teardown_issue_10() {
    tokio::time::pause();
    let (runtime, mut events) = spawn_here(Script::default(), config());
    events.ready().await;
    // Made in this order, awaited in the other: the call keeps its place.
    let slow = runtime.call(Req::Sleep(Duration::from_millis(50)));
    let echo = runtime.call(Req::Echo(7));
    let report = runtime.stop(STOP).await;
    assert!(report.graceful(), "{report:?}");
    assert_eq!(slow.await.unwrap(), "slept");
    assert_eq!(echo.await.unwrap(), "7");
    let late = runtime.call(Req::Echo(8)).await;
    assert!(
        matches!(late, Err(RequestError::Exited { cause: None })),
        "{late:?}"
    );
}

/// The owner's arbiter, where the monitor runs, stops while the runtime
/// (on a thread of its own) is still in setup: nothing will report on it
/// any more, and a handle held elsewhere hears so instead of waiting for
/// ever.
#[actix::test]
async fn handles_hear_when_the_monitor_is_gone_without_a_word() {
    let owner = Arbiter::new();
    let (handle_tx, handle_rx) = futures::channel::oneshot::channel();
    owner.spawn(async move {
        let script = Script {
            setup: Step::Pending,
            ..Script::default()
        };
        let runtime = RuntimeActor::spawn(
            config().placement(Placement::Dedicated),
            support::factory(script),
        );
        let _ = handle_tx.send(runtime);
    });
    let runtime = handle_rx.await.unwrap();
    owner.stop();
    let ready = tokio::time::timeout(Duration::from_secs(30), runtime.ready()).await;
    assert!(
        matches!(ready, Ok(Err(RequestError::Exited { cause: None }))),
        "{ready:?}"
    );
    let report = tokio::time::timeout(Duration::from_secs(30), runtime.stop(STOP)).await;
    assert!(report.is_ok(), "a stop must not wait for ever");
    owner.join().unwrap();
}
