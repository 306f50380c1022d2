//! Runtimes that answer later ([`Runtime::dispatch`]): answers run beside
//! the requests that follow, a graceful stop waits for them, and a failure
//! among them fails the runtime and answers the rest with its cause.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Arbiter;
use futures::future::join_all;
use runtime_actor::{
    Dispatch, FailureCause, Placement, RequestError, Runtime, RuntimeActor, RuntimeContext,
    RuntimeError, RuntimeFactory, RuntimeHandle,
};
use support::{config, watcher, Events};
use tokio::time::Instant;

/// What a request asks of the pipelined runtime.
#[derive(Debug, Clone)]
enum Ask {
    /// Answer `text` after the delay, later.
    Later(Duration, &'static str),
    /// Answer at once, through `handle`.
    Now(&'static str),
    /// Refuse it: the runtime is full.
    Busy,
    /// Answer later with a fatal error, after the delay.
    FatalLater(Duration),
    /// Panic in the later answer.
    PanicLater,
    /// Panic while deciding.
    PanicInDispatch,
    /// Catch a panic while deciding, then hand the request to `handle`,
    /// which raises a payload without the panic hook (`resume_unwind`).
    CaughtThenResumed,
}

/// Records what happened, in order, across its generations.
type Log = Arc<Mutex<Vec<String>>>;

struct Pipelined {
    log: Log,
    /// Kept by the later answers: proof that they need not borrow the runtime.
    answered: Rc<RefCell<u32>>,
}

impl Runtime for Pipelined {
    type Request = Ask;
    type Response = String;

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, ask: Ask) -> Result<String, RuntimeError> {
        match ask {
            Ask::Now(text) => Ok(text.to_owned()),
            Ask::CaughtThenResumed => std::panic::resume_unwind(Box::new("resumed in handle")),
            other => Err(RuntimeError::new(format!(
                "{other:?} goes through dispatch"
            ))),
        }
    }

    fn dispatch(&mut self, ask: Ask) -> Dispatch<Ask, String> {
        let log = Arc::clone(&self.log);
        let answered = Rc::clone(&self.answered);
        match ask {
            Ask::Later(after, text) => Dispatch::Later(Box::pin(async move {
                tokio::time::sleep(after).await;
                *answered.borrow_mut() += 1;
                log.lock().unwrap().push(format!("answered {text}"));
                Ok(text.to_owned())
            })),
            Ask::Busy => Dispatch::Later(Box::pin(async { Err(RequestError::Busy { limit: 1 }) })),
            Ask::FatalLater(after) => Dispatch::Later(Box::pin(async move {
                tokio::time::sleep(after).await;
                Err(RequestError::Runtime(RuntimeError::fatal(
                    "the model is gone",
                )))
            })),
            Ask::PanicLater => Dispatch::Later(Box::pin(async {
                panic!("a later answer panicked");
            })),
            Ask::PanicInDispatch => panic!("dispatch panicked"),
            Ask::CaughtThenResumed => {
                let _ = std::panic::catch_unwind(|| panic!("caught in dispatch"));
                Dispatch::Handle(Ask::CaughtThenResumed)
            }
            now => Dispatch::Handle(now),
        }
    }

    async fn teardown(&mut self) {
        self.log.lock().unwrap().push("teardown".into());
    }
}

fn spawn() -> (RuntimeHandle<Pipelined>, Events, Log) {
    let log = Log::default();
    let (recipient, events) = watcher();
    let factory = {
        let log = Arc::clone(&log);
        RuntimeFactory::new(move |_| Pipelined {
            log: Arc::clone(&log),
            answered: Rc::default(),
        })
    };
    // On the test's own arbiter, so that the paused clock drives it all.
    let config = config()
        .placement(Placement::Shared(Arbiter::current()))
        .watcher(recipient);
    let runtime = RuntimeActor::spawn(config, factory);
    (runtime, events, log)
}

#[actix::test]
async fn later_answers_run_beside_the_requests_that_follow() {
    tokio::time::pause();
    let (runtime, mut events, log) = spawn();
    events.ready().await;
    let begun = Instant::now();
    let slow = runtime.call(Ask::Later(Duration::from_millis(300), "slow"));
    let fast = runtime.call(Ask::Later(Duration::from_millis(100), "fast"));
    let now = runtime.call(Ask::Now("now"));
    let busy = runtime.call(Ask::Busy);
    assert_eq!(now.await.unwrap(), "now");
    assert!(matches!(busy.await, Err(RequestError::Busy { limit: 1 })));
    assert_eq!(fast.await.unwrap(), "fast");
    assert_eq!(slow.await.unwrap(), "slow");
    // Side by side: 300 ms in all, not 400.
    let took = begun.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(305),
        "{took:?}"
    );
    assert_eq!(*log.lock().unwrap(), ["answered fast", "answered slow"]);
}

#[actix::test]
async fn a_graceful_stop_waits_for_the_answers_in_flight_before_teardown() {
    tokio::time::pause();
    let (runtime, mut events, log) = spawn();
    events.ready().await;
    let in_flight: Vec<_> = [3, 1, 2]
        .map(|s| runtime.call(Ask::Later(Duration::from_secs(s), "done")))
        .into_iter()
        .collect();
    let report = runtime.stop(Duration::from_secs(10)).await;
    assert!(report.graceful(), "{report:?}");
    for answer in join_all(in_flight).await {
        assert_eq!(answer.unwrap(), "done");
    }
    assert_eq!(
        *log.lock().unwrap(),
        [
            "answered done",
            "answered done",
            "answered done",
            "teardown"
        ]
    );
    assert!(events.exited().await.is_none());
}

#[actix::test]
async fn a_stop_deadline_answers_what_is_still_in_flight() {
    tokio::time::pause();
    let (runtime, mut events, log) = spawn();
    events.ready().await;
    let stuck = runtime.call(Ask::Later(Duration::from_secs(3600), "never"));
    // Queued before the stop: it is dispatched before the stop is seen.
    let report = runtime.stop(Duration::from_secs(2)).await;
    assert!(!report.graceful(), "{report:?}");
    assert!(matches!(
        stuck.await,
        Err(RequestError::Exited { cause: None })
    ));
    assert!(log.lock().unwrap().is_empty());
    assert!(events.exited().await.is_none());
}

#[actix::test]
async fn a_fatal_later_answer_fails_the_runtime_and_the_rest_get_its_cause() {
    tokio::time::pause();
    let (runtime, mut events, _) = spawn();
    events.ready().await;
    let waiting = runtime.call(Ask::Later(Duration::from_secs(60), "never"));
    let fatal = runtime.call(Ask::FatalLater(Duration::from_secs(1)));
    match fatal.await {
        Err(RequestError::Runtime(e)) => assert!(e.is_fatal()),
        other => panic!("expected the fatal error, got {other:?}"),
    }
    match events.failed().await {
        FailureCause::Error(e) => assert_eq!(e.message(), "the model is gone"),
        other => panic!("expected the error, got {other}"),
    }
    match waiting.await {
        Err(RequestError::Exited {
            cause: Some(FailureCause::Error(e)),
        }) => assert_eq!(e.message(), "the model is gone"),
        other => panic!("expected the runtime's failure, got {other:?}"),
    }
    assert!(matches!(
        runtime.call(Ask::Now("after")).await,
        Err(RequestError::Exited { .. })
    ));
}

#[actix::test]
async fn a_panic_in_a_later_answer_is_caught_and_fails_the_runtime() {
    tokio::time::pause();
    let (runtime, mut events, _) = spawn();
    events.ready().await;
    let panicked = runtime.call(Ask::PanicLater).await;
    match panicked {
        Err(RequestError::Exited {
            cause: Some(FailureCause::Panicked { message, .. }),
        }) => assert_eq!(message, "a later answer panicked"),
        other => panic!("expected the panic, got {other:?}"),
    }
    assert!(matches!(
        events.failed().await,
        FailureCause::Panicked { .. }
    ));
}

#[actix::test]
async fn a_panic_in_dispatch_is_caught_and_answers_its_request() {
    tokio::time::pause();
    let (runtime, mut events, _) = spawn();
    events.ready().await;
    match runtime.call(Ask::PanicInDispatch).await {
        Err(RequestError::Exited {
            cause: Some(FailureCause::Panicked { message, .. }),
        }) => assert_eq!(message, "dispatch panicked"),
        other => panic!("expected the panic, got {other:?}"),
    }
    assert!(matches!(
        events.failed().await,
        FailureCause::Panicked { .. }
    ));
}

#[actix::test]
async fn a_panic_dispatch_caught_itself_does_not_lend_its_location_to_handle() {
    tokio::time::pause();
    let (runtime, mut events, _) = spawn();
    events.ready().await;
    match runtime.call(Ask::CaughtThenResumed).await {
        Err(RequestError::Exited {
            cause: Some(FailureCause::Panicked { message, location }),
        }) => {
            assert_eq!(message, "resumed in handle");
            // `resume_unwind` skips the hook: no location is known, and the
            // one of the panic that dispatch caught is not this one's.
            assert!(location.is_none(), "{location:?}");
        }
        other => panic!("expected the panic, got {other:?}"),
    }
}
