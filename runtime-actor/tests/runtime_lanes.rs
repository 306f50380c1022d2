//! A runtime in place takes its owner's requests straight into its queue
//! on the thread they share, and through its mailbox from anywhere else:
//! the answers are the same, and a stop is never overtaken.

mod support;

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use runtime_actor::{FailureCause, Placement, RequestError};
use support::{config, spawn_at, Req, Script};

const STOP: Duration = Duration::from_secs(5);

/// A stop travels through the mailbox: a request its owner makes after it
/// must not reach the queue first, and be served before the teardown.
#[actix::test]
async fn a_request_after_a_stop_does_not_overtake_it() {
    let (runtime, mut events) = spawn_at(Placement::Current, Script::default(), config());
    events.ready().await;
    assert_eq!(runtime.call(Req::Echo(1)).await.unwrap(), "1");
    let mut stop = Box::pin(runtime.stop(STOP));
    // Its first poll sends the stop, and yields.
    let first = std::future::poll_fn(|cx| Poll::Ready(stop.as_mut().poll(cx))).await;
    assert!(first.is_pending());
    let after = runtime.call(Req::Echo(2)).await;
    assert!(
        matches!(
            after,
            Err(RequestError::Stopping | RequestError::Exited { cause: None })
        ),
        "served after the stop: {after:?}"
    );
    let report = stop.await;
    assert!(report.graceful(), "{report:?}");
}

/// From another thread the owner's requests take the mailbox, and are
/// answered as from the runtime's own.
#[actix::test]
async fn requests_from_another_thread_are_answered() {
    let (runtime, mut events) = spawn_at(Placement::Current, Script::default(), config());
    events.ready().await;
    let (answered, answer) = tokio::sync::oneshot::channel();
    let elsewhere = runtime.clone();
    let thread = std::thread::spawn(move || {
        let owner = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let answers = owner.block_on(async {
            let mut answers = Vec::new();
            for n in 0..3 {
                answers.push(elsewhere.call(Req::Echo(n)).await);
            }
            answers
        });
        let _ = answered.send(answers);
    });
    let here = runtime.call(Req::Echo(10)).await;
    let there = answer.await.expect("the thread answers");
    thread.join().unwrap();
    assert_eq!(here.unwrap(), "10");
    let there: Vec<String> = there.into_iter().map(Result::unwrap).collect();
    assert_eq!(there, ["0", "1", "2"]);
    runtime.stop(STOP).await;
}

/// Once the runtime has ended, a request from its thread hears why.
#[actix::test]
async fn a_request_after_the_end_hears_the_cause() {
    let (runtime, mut events) = spawn_at(Placement::Current, Script::default(), config());
    events.ready().await;
    let fatal = runtime.call(Req::Fatal).await;
    assert!(matches!(&fatal, Err(RequestError::Runtime(e)) if e.is_fatal()));
    events.failed().await;
    events.exited().await;
    let after = runtime.call(Req::Echo(3)).await;
    match after {
        Err(RequestError::Exited {
            cause: Some(FailureCause::Error(e)),
        }) => assert_eq!(e.message(), "device lost"),
        other => panic!("{other:?}"),
    }
}
