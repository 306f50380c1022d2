//! A `FailureReporter` fails its runtime from any thread, at any point of
//! its life: the first report stands, and a report to a runtime that has
//! ended is ignored.

mod support;

use std::time::Duration;

use actix::Arbiter;
use runtime_actor::{
    FailureCause, FailureReporter, Placement, RequestError, Runtime, RuntimeActor, RuntimeContext,
    RuntimeError, RuntimeFactory, RuntimeHandle,
};
use support::{config, watcher, Events};
use tokio::sync::mpsc;

const STOP: Duration = Duration::from_secs(5);

/// Hands its reporter out from setup, then sets up as long as `setup_for`
/// says (for ever when `None`); a request sleeps as long as it asks.
struct Reporting {
    reporters: mpsc::UnboundedSender<FailureReporter>,
    setup_for: Option<Duration>,
}

impl Runtime for Reporting {
    type Request = Duration;
    type Response = ();

    async fn setup(&mut self, ctx: &mut RuntimeContext) -> Result<(), RuntimeError> {
        let _ = self.reporters.send(ctx.failure_reporter());
        match self.setup_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
        Ok(())
    }

    async fn handle(&mut self, sleep: Duration) -> Result<(), RuntimeError> {
        tokio::time::sleep(sleep).await;
        Ok(())
    }
}

fn spawn(
    placement: Placement,
    setup_for: Option<Duration>,
) -> (
    RuntimeHandle<Reporting>,
    Events,
    mpsc::UnboundedReceiver<FailureReporter>,
) {
    let (reporters, reporter) = mpsc::unbounded_channel();
    let (watcher, events) = watcher();
    let runtime = RuntimeActor::spawn(
        config().placement(placement).watcher(watcher),
        RuntimeFactory::new(move |_| Reporting {
            reporters: reporters.clone(),
            setup_for,
        }),
    );
    (runtime, events, reporter)
}

/// Reports `message` from a thread of its own, and waits for it to have.
fn report_from_another_thread(reporter: &FailureReporter, message: &'static str) {
    let reporter = reporter.clone();
    std::thread::spawn(move || reporter.fail(RuntimeError::new(message)))
        .join()
        .expect("the reporting thread");
}

fn assert_error(cause: &FailureCause, message: &str) {
    match cause {
        FailureCause::Error(e) => assert_eq!(e.message(), message),
        other => panic!("expected the error {message:?}, got {other:?}"),
    }
}

#[actix::test]
async fn a_report_from_another_thread_fails_a_runtime_still_in_setup() {
    for placement in [Placement::Current, Placement::Shared(Arbiter::current())] {
        let (runtime, mut events, mut reporter) = spawn(placement, None);
        let reporter = reporter.recv().await.expect("setup hands its reporter out");
        report_from_another_thread(&reporter, "the device vanished");
        assert_error(&events.failed().await, "the device vanished");
        assert_error(
            &events.exited().await.expect("a cause"),
            "the device vanished",
        );
        let ready = runtime.ready().await;
        assert!(
            matches!(&ready, Err(RequestError::Exited { cause: Some(c) }) if c.to_string().contains("the device vanished")),
            "{ready:?}"
        );
    }
}

#[actix::test]
async fn the_first_report_stands_and_a_request_in_flight_hears_it() {
    tokio::time::pause();
    let (runtime, mut events, mut reporter) = spawn(Placement::Current, Some(Duration::ZERO));
    let reporter = reporter.recv().await.expect("setup hands its reporter out");
    events.ready().await;
    let in_flight = runtime.call(Duration::from_secs(60));
    let first = async {
        // Once the request is taken.
        tokio::task::yield_now().await;
        report_from_another_thread(&reporter, "first");
        report_from_another_thread(&reporter, "second");
    };
    let (answer, ()) = tokio::join!(in_flight, first);
    match answer {
        Err(RequestError::Exited { cause: Some(cause) }) => assert_error(&cause, "first"),
        other => panic!("expected Exited with the first report, got {other:?}"),
    }
    assert_error(&events.failed().await, "first");
    assert_error(&events.exited().await.expect("a cause"), "first");
    assert!(
        format!("{reporter:?}").contains("reported: true"),
        "{reporter:?}"
    );
}

#[actix::test]
async fn a_report_after_the_end_is_ignored() {
    tokio::time::pause();
    let (runtime, mut events, mut reporter) = spawn(Placement::Current, Some(Duration::ZERO));
    let reporter = reporter.recv().await.expect("setup hands its reporter out");
    events.ready().await;
    let stopped = runtime.stop(STOP).await;
    assert!(stopped.graceful() && stopped.cause.is_none(), "{stopped:?}");
    assert!(events.exited().await.is_none(), "a stop on request");
    report_from_another_thread(&reporter, "too late");
    reporter.report(FailureCause::Lost);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(runtime.failure().is_none(), "{:?}", runtime.failure());
    assert!(events.try_next().is_none(), "nothing after the exit");
}
