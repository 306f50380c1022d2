//! Failures of user code: errors, panics, and what callers see of them.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::Arbiter;
use runtime_actor::{FailureCause, Placement, RequestError, RuntimeActor, RuntimeError};
use support::{assert_panicked, config, spawn_dedicated, spawn_here, Req, Script, Step};

const STOP: Duration = Duration::from_secs(5);

#[actix::test]
async fn setup_error_fails_the_start_with_the_error() {
    tokio::time::pause();
    let script = Script {
        setup: Step::Fail,
        ..Script::default()
    };
    let (runtime, mut events) = spawn_here(script.clone(), config());
    match events.failed().await {
        FailureCause::Error(e) => assert_eq!(e.message(), "model file missing"),
        other => panic!("expected an error cause, got {other:?}"),
    }
    assert!(matches!(
        events.exited().await,
        Some(FailureCause::Error(_))
    ));
    assert!(matches!(runtime.failure(), Some(FailureCause::Error(_))));
    assert_eq!(script.calls.teardowns.load(Ordering::SeqCst), 0);
}

#[actix::test]
async fn panic_in_setup_is_captured_with_message_and_location() {
    tokio::time::pause();
    let script = Script {
        setup: Step::Panic,
        ..Script::default()
    };
    let (_runtime, mut events) = spawn_here(script, config());
    assert_panicked(&events.failed().await, "scripted panic");
    assert_panicked(&events.exited().await.unwrap(), "scripted panic");
}

#[actix::test]
async fn panic_in_handle_is_captured_and_answers_the_caller() {
    tokio::time::pause();
    let (runtime, mut events) = spawn_here(Script::default(), config());
    events.ready().await;
    let answer = runtime.call(Req::Panic).await;
    match answer {
        Err(RequestError::Exited { cause: Some(cause) }) => {
            assert_panicked(&cause, "handler exploded")
        }
        other => panic!("expected Exited with the panic, got {other:?}"),
    }
    assert_panicked(&events.failed().await, "handler exploded");
    assert_panicked(&events.exited().await.unwrap(), "handler exploded");
}

#[actix::test]
async fn panic_in_health_is_captured() {
    tokio::time::pause();
    let script = Script {
        health_panics: true,
        ..Script::default()
    };
    let (runtime, mut events) = spawn_here(script, config());
    events.ready().await;
    let health = runtime.check_health(Duration::from_secs(1)).await;
    assert!(
        matches!(
            health,
            Err(RequestError::Exited {
                cause: Some(FailureCause::Panicked { .. })
            })
        ),
        "{health:?}"
    );
    assert_panicked(&events.failed().await, "health probe exploded");
}

#[actix::test]
async fn panic_in_teardown_is_captured_and_reported_by_stop() {
    tokio::time::pause();
    let script = Script {
        teardown: Step::Panic,
        ..Script::default()
    };
    let (runtime, mut events) = spawn_here(script, config());
    events.ready().await;
    let report = runtime.stop(STOP).await;
    assert!(!report.forced, "{report:?}");
    assert_panicked(report.cause.as_ref().unwrap(), "scripted panic");
    assert_panicked(&events.failed().await, "scripted panic");
    assert_panicked(&events.exited().await.unwrap(), "scripted panic");
}

#[actix::test]
async fn a_panicking_runtime_leaves_its_neighbour_on_a_shared_arbiter_serving() {
    let arbiter = Arbiter::new();
    let shared = || config().placement(Placement::Shared(arbiter.handle()));
    let (watcher_a, mut events_a) = support::watcher();
    let (watcher_b, mut events_b) = support::watcher();
    let a = RuntimeActor::spawn(
        shared().watcher(watcher_a),
        support::factory(Script::default()),
    );
    let b = RuntimeActor::spawn(
        shared().watcher(watcher_b),
        support::factory(Script::default()),
    );
    events_a.ready().await;
    events_b.ready().await;

    assert!(a.call(Req::Panic).await.is_err());
    assert_panicked(&events_a.failed().await, "handler exploded");
    events_a.exited().await;

    for n in 0..10 {
        assert_eq!(b.call(Req::Echo(n)).await.unwrap(), n.to_string());
    }
    assert!(
        events_b.try_next().is_none(),
        "the neighbour saw no failure"
    );
    b.stop(STOP).await;
    arbiter.stop();
    let _ = std::thread::spawn(move || arbiter.join()).join();
}

#[actix::test]
async fn requests_in_flight_at_a_panic_get_the_cause() {
    tokio::time::pause();
    let (runtime, mut events) = spawn_here(Script::default(), config());
    events.ready().await;
    let before = runtime.call(Req::Echo(1));
    let panics = runtime.call(Req::Panic);
    let queued: Vec<_> = (0..5).map(|n| runtime.call(Req::Echo(n))).collect();
    let (before, panics, queued) = tokio::join!(before, panics, futures::future::join_all(queued));
    assert_eq!(before.unwrap(), "1");
    for answer in std::iter::once(panics).chain(queued) {
        match answer {
            Err(RequestError::Exited { cause: Some(cause) }) => {
                assert_panicked(&cause, "handler exploded")
            }
            other => panic!("expected Exited with the panic, got {other:?}"),
        }
    }
}

#[actix::test]
async fn a_fatal_error_answers_the_request_and_fails_the_runtime() {
    tokio::time::pause();
    let (runtime, mut events) = spawn_here(Script::default(), config());
    events.ready().await;
    let answer = runtime.call(Req::Fatal).await;
    assert!(
        matches!(&answer, Err(RequestError::Runtime(e)) if e.is_fatal()),
        "{answer:?}"
    );
    match events.failed().await {
        FailureCause::Error(e) => assert_eq!(e.message(), "device lost"),
        other => panic!("expected an error cause, got {other:?}"),
    }
    events.exited().await;
    let after = runtime.call(Req::Echo(1)).await;
    assert!(
        matches!(after, Err(RequestError::Exited { cause: Some(_) })),
        "{after:?}"
    );
}

/// The failure a request caused is recorded before that request is
/// answered: its caller, asking the handle at once, finds the runtime
/// failed, even where the owner is told through a monitor on another
/// thread. The failure is told once.
#[actix::test]
async fn a_caller_answered_with_a_failure_finds_the_runtime_failed() {
    for (req, placement) in [
        (Req::Panic, "dedicated"),
        (Req::Fatal, "dedicated"),
        (Req::Panic, "in place"),
        (Req::Fatal, "in place"),
    ] {
        let fatal = matches!(req, Req::Fatal);
        let (runtime, mut events) = match placement {
            "dedicated" => spawn_dedicated(Script::default(), config()),
            _ => spawn_here(Script::default(), config()),
        };
        events.ready().await;
        assert!(runtime.failure().is_none());
        let answer = runtime.call(req).await;
        assert!(answer.is_err(), "{placement}: {answer:?}");
        assert!(
            runtime.failure().is_some(),
            "{placement}, fatal {fatal}: not failed yet"
        );
        match runtime.failure() {
            Some(FailureCause::Error(e)) if fatal => assert_eq!(e.message(), "device lost"),
            Some(cause) if !fatal => assert_panicked(&cause, "handler exploded"),
            other => panic!("{placement}: {other:?}"),
        }
        events.failed().await;
        events.exited().await;
        assert!(
            events.try_next().is_none(),
            "{placement}: told more than once"
        );
    }
}

#[actix::test]
async fn a_spawned_task_can_fail_its_runtime() {
    tokio::time::pause();
    let (runtime, mut events) = spawn_here(Script::default(), config());
    events.ready().await;
    assert_eq!(runtime.call(Req::FailFromTask).await.unwrap(), "reported");
    match events.failed().await {
        FailureCause::Error(e) => assert_eq!(e.message(), "background task failed"),
        other => panic!("expected an error cause, got {other:?}"),
    }
    events.exited().await;
}

#[actix::test]
async fn an_unhealthy_answer_is_returned_to_the_checker() {
    tokio::time::pause();
    let script = Script {
        health: Err(RuntimeError::new("queue stalled")),
        ..Script::default()
    };
    let (runtime, mut events) = spawn_here(script.clone(), config());
    events.ready().await;
    let health = runtime.check_health(Duration::from_secs(1)).await;
    assert!(
        matches!(&health, Err(RequestError::Runtime(e)) if e.message() == "queue stalled"),
        "{health:?}"
    );
    assert_eq!(script.calls.health.load(Ordering::SeqCst), 1);
    assert!(events.try_next().is_none(), "the owner decides what to do");
}

#[actix::test]
async fn a_health_check_that_takes_too_long_times_out() {
    tokio::time::pause();
    let (runtime, mut events) = spawn_here(Script::default(), config());
    events.ready().await;
    let busy = runtime.call(Req::Sleep(Duration::from_secs(30)));
    let health = runtime.check_health(Duration::from_secs(1));
    let (busy, health) = tokio::join!(busy, health);
    assert_eq!(busy.unwrap(), "slept");
    assert!(
        matches!(health, Err(RequestError::TimedOut { after }) if after == Duration::from_secs(1)),
        "{health:?}"
    );
}

#[actix::test]
async fn the_owner_can_fail_a_runtime_it_judged_unhealthy() {
    tokio::time::pause();
    let script = Script::default();
    let (runtime, mut events) = spawn_here(script.clone(), config());
    events.ready().await;
    runtime.fail(FailureCause::Unhealthy {
        reason: "3 health checks failed".into(),
    });
    assert!(
        matches!(events.failed().await, FailureCause::Unhealthy { reason } if reason == "3 health checks failed")
    );
    assert!(matches!(
        events.exited().await,
        Some(FailureCause::Unhealthy { .. })
    ));
    assert_eq!(script.calls.teardowns.load(Ordering::SeqCst), 0);
}

#[test]
fn errors_read_well() {
    let cause = FailureCause::Exited {
        code: None,
        signal: Some(9),
        output: vec![],
    };
    assert_eq!(cause.to_string(), "killed by signal 9");
    let exited = RequestError::Exited { cause: Some(cause) };
    assert_eq!(
        exited.to_string(),
        "runtime exited before answering (killed by signal 9)"
    );
    let with_output = FailureCause::Exited {
        code: Some(3),
        signal: None,
        output: vec!["loading".into(), "weights.bin missing".into()],
    };
    // Every kept line: the reason is often the line before the last.
    assert_eq!(
        with_output.to_string(),
        "exited with code 3; last 2 lines of output:\n    loading\n    weights.bin missing"
    );
    let one_line = FailureCause::Exited {
        code: Some(3),
        signal: None,
        output: vec!["weights.bin missing".into()],
    };
    assert_eq!(
        one_line.to_string(),
        "exited with code 3; last output: weights.bin missing"
    );
    let timed_out = FailureCause::TimedOut {
        after: std::time::Duration::from_secs(4),
        waiting_for: Some("the tcp probe to 127.0.0.1:1 (40 tries, last error: refused)".into()),
    };
    assert_eq!(
        timed_out.to_string(),
        "not ready after 4s; waiting for the tcp probe to 127.0.0.1:1 (40 tries, last error: refused)"
    );
    let io = std::io::Error::other("disk full");
    let err = RequestError::Runtime(RuntimeError::new("write failed").with_source(io));
    assert_eq!(err.to_string(), "runtime answered with an error");
    let source = std::error::Error::source(&err).unwrap();
    assert_eq!(source.to_string(), "write failed");
    assert_eq!(
        std::error::Error::source(source).unwrap().to_string(),
        "disk full"
    );
}
