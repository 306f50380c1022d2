//! A runtime in place takes its owner's requests straight into its queue
//! on the thread they share, and through its mailbox from anywhere else:
//! the answers are the same, and a stop is never overtaken.

mod support;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use runtime_actor::{FailureCause, Placement, RequestError};
use support::{config, spawn_at, Req, Script, Step};

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

/// A request the owner made on another thread, before one it makes on the
/// runtime's thread, is served first: the second waits behind it in the
/// mailbox rather than overtake it through the lane.
#[actix::test]
async fn the_owners_requests_keep_their_order_across_threads() {
    let (runtime, mut events) = spawn_at(Placement::Current, Script::default(), config());
    events.ready().await;
    for _ in 0..20 {
        let served = Arc::new(Mutex::new(Vec::new()));
        let (sent, made) = tokio::sync::oneshot::channel();
        let (elsewhere, log) = (runtime.clone(), Arc::clone(&served));
        std::thread::spawn(move || {
            elsewhere.call_with(Req::Echo(1), move |_| log.lock().unwrap().push(1));
            let _ = sent.send(());
        });
        made.await.unwrap();
        let log = Arc::clone(&served);
        runtime.call_with(Req::Echo(2), move |_| log.lock().unwrap().push(2));
        // Behind both, whichever way each went.
        runtime.call(Req::Echo(3)).await.unwrap();
        assert_eq!(*served.lock().unwrap(), [1, 2]);
    }
    runtime.stop(STOP).await;
}

/// A refusal is answered by the actor, never inside the call that asked: a
/// caller may hold a lock its callback takes.
#[actix::test]
async fn a_refused_request_is_not_answered_inside_the_call() {
    tokio::time::pause();
    let script = Script {
        setup: Step::Sleep(Duration::from_secs(1)),
        ..Script::default()
    };
    let (runtime, _events) = spawn_at(Placement::Current, script, config());
    // Let the actor start: setup sleeps, and requests are refused.
    tokio::task::yield_now().await;
    let held = Arc::new(Mutex::new(()));
    let (answered, answer) = tokio::sync::oneshot::channel();
    let guard = held.lock().unwrap();
    let lock = Arc::clone(&held);
    runtime.call_with(Req::Echo(1), move |a| {
        let inside = lock.try_lock().is_err();
        let _ = answered.send((a, inside));
    });
    drop(guard);
    let (a, inside) = answer.await.unwrap();
    assert!(matches!(a, Err(RequestError::NotReady)), "{a:?}");
    assert!(
        !inside,
        "answered inside call_with, under the caller's lock"
    );
}
