//! Start deadlines, their extension, and stops that have to be forced.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use runtime_actor::{FailureCause, Placement, RequestError, RuntimeEvent};
use support::{config, spawn_at, spawn_dedicated, Gate, Req, Script, Step};

/// Each case runs twice on this arbiter: watched by a monitor task
/// (`Shared`), and in place (`Current`), where the runtime's actor keeps
/// its own deadline and stop timers.
macro_rules! on_this_arbiter {
    ($($case:ident),* $(,)?) => {
        mod monitored {
            $(
                #[actix::test]
                async fn $case() {
                    super::$case(super::Placement::Shared(super::Arbiter::current())).await
                }
            )*
        }
        mod in_place {
            $(
                #[actix::test]
                async fn $case() {
                    super::$case(super::Placement::Current).await
                }
            )*
        }
    };
}

on_this_arbiter!(
    a_runtime_not_ready_by_its_deadline_times_out_and_is_torn_down_issue_10,
    a_timed_out_start_whose_teardown_hangs_is_killed_after_the_stop_timeout,
    progress_extends_the_start_deadline,
    an_extension_too_short_still_times_out_at_the_extended_deadline,
    a_teardown_that_never_finishes_is_forced_after_the_deadline,
    an_extension_past_the_end_of_time_lifts_the_deadline,
    a_timed_out_start_with_an_endless_stop_timeout_is_torn_down,
);

/// `extend_deadline(Duration::MAX)` ("as long as it takes") must not
/// overflow the clock: the deadline is lifted, the runtime becomes ready.
async fn an_extension_past_the_end_of_time_lifts_the_deadline(placement: Placement) {
    ready_past_a_deadline_extended_by(placement, Duration::MAX).await;
}

/// A stop timeout of `Duration::MAX` ("never force") must not overflow the
/// clock when the start deadline passes.
async fn a_timed_out_start_with_an_endless_stop_timeout_is_torn_down(placement: Placement) {
    tokio::time::pause();
    let script = Script {
        setup: Step::Pending,
        ..Script::default()
    };
    let (_runtime, mut events) = spawn_at(
        placement.clone(),
        script.clone(),
        config()
            .start_timeout(Some(Duration::from_secs(2)))
            .stop_timeout(Duration::MAX),
    );
    assert!(matches!(
        events.failed().await,
        FailureCause::TimedOut { .. }
    ));
    assert!(matches!(
        events.exited().await,
        Some(FailureCause::TimedOut { .. })
    ));
    assert_eq!(script.calls.teardowns.load(Ordering::SeqCst), 1);
}

/// On the paused clock a duration is exact but for tokio's 1 ms timer tick.
fn assert_about(actual: Duration, expected: Duration) {
    assert!(
        actual >= expected && actual <= expected + Duration::from_millis(2),
        "{actual:?}, expected {expected:?}"
    );
}

async fn a_runtime_not_ready_by_its_deadline_times_out_and_is_torn_down_issue_10(
    placement: Placement,
) {
    tokio::time::pause();
    let script = Script {
        setup: Step::Sleep(Duration::from_secs(10)),
        ..Script::default()
    };
    let (runtime, mut events) = spawn_at(
        placement.clone(),
        script.clone(),
        config().start_timeout(Some(Duration::from_secs(2))),
    );
    match events.failed().await {
        FailureCause::TimedOut { after, .. } => assert_about(after, Duration::from_secs(2)),
        other => panic!("expected TimedOut, got {other:?}"),
    }
    assert!(matches!(
        events.exited().await,
        Some(FailureCause::TimedOut { .. })
    ));
    let after = runtime.call(Req::Echo(1)).await;
    assert!(
        matches!(
            after,
            Err(RequestError::Exited {
                cause: Some(FailureCause::TimedOut { .. })
            })
        ),
        "{after:?}"
    );
    // Stopped the graceful way first: teardown undid the partial setup.
    assert_eq!(script.calls.teardowns.load(Ordering::SeqCst), 1);
}

async fn a_timed_out_start_whose_teardown_hangs_is_killed_after_the_stop_timeout(
    placement: Placement,
) {
    tokio::time::pause();
    let script = Script {
        setup: Step::Pending,
        teardown: Step::Pending,
        ..Script::default()
    };
    let begun = tokio::time::Instant::now();
    let (_runtime, mut events) = spawn_at(
        placement.clone(),
        script.clone(),
        config()
            .start_timeout(Some(Duration::from_secs(2)))
            .stop_timeout(Duration::from_secs(3)),
    );
    assert!(matches!(
        events.failed().await,
        FailureCause::TimedOut { .. }
    ));
    assert!(matches!(
        events.exited().await,
        Some(FailureCause::TimedOut { .. })
    ));
    assert_about(begun.elapsed(), Duration::from_secs(5));
    assert_eq!(script.calls.teardowns.load(Ordering::SeqCst), 1);
}

async fn progress_extends_the_start_deadline(placement: Placement) {
    ready_past_a_deadline_extended_by(placement, Duration::from_secs(10)).await;
}

/// Setup extends its 2 s deadline by `extend`, then takes 5 s: the watcher
/// hears of the extension, and the runtime is ready past the original
/// deadline.
async fn ready_past_a_deadline_extended_by(placement: Placement, extend: Duration) {
    tokio::time::pause();
    let script = Script {
        setup: Step::ExtendThenSleep(extend, Duration::from_secs(5)),
        ..Script::default()
    };
    let (runtime, mut events) = spawn_at(
        placement,
        script,
        config().start_timeout(Some(Duration::from_secs(2))),
    );
    match events.next().await {
        RuntimeEvent::Progressed {
            note, extend: told, ..
        } => {
            assert_eq!(note, "loading weights");
            assert_eq!(told, extend);
        }
        other => panic!("expected Progressed, got {other:?}"),
    }
    match events.next().await {
        RuntimeEvent::Ready { setup, .. } => assert_about(setup, Duration::from_secs(5)),
        other => panic!("expected Ready past the original deadline, got {other:?}"),
    }
    assert_eq!(runtime.call(Req::Echo(5)).await.unwrap(), "5");
}

async fn an_extension_too_short_still_times_out_at_the_extended_deadline(placement: Placement) {
    tokio::time::pause();
    let script = Script {
        setup: Step::ExtendThenSleep(Duration::from_secs(3), Duration::from_secs(5)),
        ..Script::default()
    };
    let (_runtime, mut events) = spawn_at(
        placement.clone(),
        script,
        config().start_timeout(Some(Duration::from_secs(2))),
    );
    assert!(matches!(
        events.next().await,
        RuntimeEvent::Progressed { .. }
    ));
    match events.failed().await {
        FailureCause::TimedOut { after, .. } => assert_about(after, Duration::from_secs(3)),
        other => panic!("expected TimedOut, got {other:?}"),
    }
}

async fn a_teardown_that_never_finishes_is_forced_after_the_deadline(placement: Placement) {
    tokio::time::pause();
    let script = Script {
        teardown: Step::Pending,
        ..Script::default()
    };
    let (runtime, mut events) = spawn_at(placement.clone(), script, config());
    events.ready().await;
    let report = runtime.stop(Duration::from_secs(5)).await;
    assert!(report.forced && !report.stuck, "{report:?}");
    assert_about(report.took, Duration::from_secs(5));
    assert!(
        events.exited().await.is_none(),
        "a forced stop is still a requested one"
    );
}

#[actix::test]
async fn a_runtime_blocked_in_teardown_is_reported_stuck_not_waited_on() {
    let gate = Gate::default();
    let script = Script {
        teardown: Step::Block(gate.clone()),
        ..Script::default()
    };
    let (runtime, mut events) =
        spawn_dedicated(script, config().kill_grace(Duration::from_millis(20)));
    events.ready().await;
    let report = runtime.stop(Duration::from_millis(20)).await;
    assert!(report.forced && report.stuck, "{report:?}");
    assert!(!runtime.has_exited());
    gate.open();
    // Once its thread is free, the forced stop completes and the thread ends.
    events.exited().await;
    assert!(runtime.has_exited());
}

/// A request queued while setup held the thread past the deadline is never
/// served: the generation failed of its timeout, and everyone hears that.
#[actix::test]
async fn a_runtime_timed_out_in_setup_never_serves() {
    let gate = Gate::default();
    let script = Script {
        setup: Step::Block(gate.clone()),
        ..Script::default()
    };
    let calls = Arc::clone(&script.calls);
    let (runtime, mut events) = spawn_dedicated(
        script,
        config().start_timeout(Some(Duration::from_millis(20))),
    );
    // Queued once setup holds the thread: in the mailbox, ahead of the
    // stop the timeout sends.
    while calls.setups.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let answer = runtime.call(Req::Panic);
    assert!(matches!(
        events.failed().await,
        FailureCause::TimedOut { .. }
    ));
    gate.open();
    let answer = answer.await;
    assert!(
        matches!(
            &answer,
            Err(RequestError::NotReady
                | RequestError::Stopping
                | RequestError::Exited {
                    cause: Some(FailureCause::TimedOut { .. })
                })
        ),
        "{answer:?}"
    );
    assert!(matches!(
        events.exited().await,
        Some(FailureCause::TimedOut { .. })
    ));
    assert_eq!(
        calls.handled.load(Ordering::SeqCst),
        0,
        "the request was served"
    );
    assert!(matches!(
        runtime.failure(),
        Some(FailureCause::TimedOut { .. })
    ));
}

#[actix::test]
async fn a_runtime_blocked_in_setup_still_times_out() {
    let gate = Gate::default();
    let script = Script {
        setup: Step::Block(gate.clone()),
        ..Script::default()
    };
    let (_runtime, mut events) = spawn_dedicated(
        script,
        config().start_timeout(Some(Duration::from_millis(20))),
    );
    assert!(matches!(
        events.failed().await,
        FailureCause::TimedOut { .. }
    ));
    gate.open();
    assert!(matches!(
        events.exited().await,
        Some(FailureCause::TimedOut { .. })
    ));
}
