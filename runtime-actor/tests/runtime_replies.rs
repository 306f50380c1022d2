//! How answers get back: through a `Request` sent straight to the actor,
//! through `call`, and through `call_with`. Every request gets one answer,
//! one dropped unanswered says why the runtime ended, and a flood of them
//! is answered in turns with the rest of the arbiter.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix::Arbiter;
use runtime_actor::{
    Dispatch, FailureCause, Placement, Request, RequestError, Runtime, RuntimeActor,
    RuntimeContext, RuntimeError, RuntimeFactory, RuntimeHandle,
};
use tokio::sync::mpsc;

use support::{assert_panicked, config, factory, spawn_here, watcher, Req, Script, Step};

const STOP: Duration = Duration::from_secs(5);

/// The message of the panic an answer says ended the runtime.
fn panic_told<T: std::fmt::Debug>(answer: Result<T, RequestError>) -> String {
    match answer {
        Err(RequestError::Exited {
            cause: Some(FailureCause::Panicked { message, .. }),
        }) => message,
        other => panic!("expected Exited with a panic, got {other:?}"),
    }
}

/// What `call_with` hands on, as the test sees it.
type Answers<T = String> = mpsc::UnboundedReceiver<Result<T, RequestError>>;

/// Collects what `call_with` hands on.
fn answers<T: Send + 'static>() -> (
    impl FnOnce(Result<T, RequestError>) + Send + 'static,
    Answers<T>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (move |answer| tx.send(answer).expect("the test listens"), rx)
}

/// The one answer `call_with` gave. The wait is only a guard against a
/// hang (the answer may come from another thread).
async fn only_answer<T>(rx: &mut Answers<T>) -> Result<T, RequestError> {
    const HANG: Duration = Duration::from_secs(60);
    let answer = tokio::time::timeout(HANG, rx.recv())
        .await
        .expect("an answer from call_with")
        .expect("the callback ran");
    // Given once: the callback, and its sender with it, is gone.
    let more = tokio::time::timeout(HANG, rx.recv()).await;
    assert!(
        matches!(more, Ok(None)),
        "a second answer, or a callback kept"
    );
    answer
}

#[actix::test]
async fn a_request_sent_to_the_actor_is_refused_before_ready_and_after_a_stop() {
    tokio::time::pause();
    let script = Script {
        setup: Step::Sleep(Duration::from_secs(1)),
        // Still stopping when the last request comes.
        teardown: Step::Sleep(Duration::from_secs(1)),
        ..Script::default()
    };
    let (runtime, mut events) = spawn_here(script, config());
    let early = runtime.addr().send(Request(Req::Echo(1))).await;
    assert!(
        matches!(early, Ok(Err(RequestError::NotReady))),
        "{early:?}"
    );
    events.ready().await;
    let served = runtime.addr().send(Request(Req::Echo(2))).await;
    assert_eq!(served.unwrap().unwrap(), "2");
    // Taken before the stop, so answered before teardown.
    let before = runtime.addr().send(Request(Req::Echo(3)));
    let stopping = actix::spawn(runtime.stop(STOP));
    tokio::task::yield_now().await;
    let after = runtime.addr().send(Request(Req::Echo(4))).await;
    assert!(
        matches!(after, Ok(Err(RequestError::Stopping))),
        "{after:?}"
    );
    assert_eq!(before.await.unwrap().unwrap(), "3");
    let report = stopping.await.unwrap();
    assert!(report.graceful(), "{report:?}");
}

#[actix::test]
async fn a_request_sent_with_do_send_is_still_served() {
    tokio::time::pause();
    let script = Script::default();
    let (runtime, mut events) = spawn_here(script.clone(), config());
    events.ready().await;
    runtime.addr().do_send(Request(Req::Echo(1)));
    // Answered in order: the first was handled before this one.
    assert_eq!(runtime.call(Req::Echo(2)).await.unwrap(), "2");
    assert_eq!(script.calls.handled.load(Ordering::SeqCst), 2);
    runtime.stop(STOP).await;
}

#[actix::test]
async fn requests_queued_behind_a_panic_get_its_cause_whichever_way_they_came() {
    tokio::time::pause();
    let (runtime, mut events) = spawn_here(Script::default(), config());
    events.ready().await;
    let panics = runtime.call(Req::Panic);
    let sent = runtime.addr().send(Request(Req::Echo(1)));
    let called = runtime.call(Req::Echo(2));
    let (answer, mut handed_on) = answers();
    runtime.call_with(Req::Echo(3), answer);
    let (panics, sent, called) = tokio::join!(panics, sent, called);
    let handed_on = only_answer(&mut handed_on).await;
    for answer in [panics, sent.expect("the actor took it"), called, handed_on] {
        match answer {
            Err(RequestError::Exited { cause: Some(cause) }) => {
                assert_panicked(&cause, "handler exploded")
            }
            other => panic!("expected Exited with the panic, got {other:?}"),
        }
    }
}

#[actix::test]
async fn call_with_hands_on_one_answer_and_after_the_end_the_cause_at_once() {
    tokio::time::pause();
    let (runtime, mut events) = spawn_here(Script::default(), config());
    events.ready().await;
    let (answer, mut handed_on) = answers();
    runtime.call_with(Req::Echo(7), answer);
    assert_eq!(only_answer(&mut handed_on).await.unwrap(), "7");
    let (answer, mut handed_on) = answers();
    runtime.call_with(Req::Fail, answer);
    assert!(matches!(
        only_answer(&mut handed_on).await,
        Err(RequestError::Runtime(e)) if !e.is_fatal()
    ));

    let fatal = runtime.call(Req::Fatal).await;
    assert!(matches!(fatal, Err(RequestError::Runtime(e)) if e.is_fatal()));
    assert!(matches!(events.failed().await, FailureCause::Error(_)));
    assert!(events.exited().await.is_some());
    // The actor is gone: the request is dropped where it is sent, and its
    // answer names the failure.
    let (answer, mut handed_on) = answers();
    runtime.call_with(Req::Echo(8), answer);
    match only_answer(&mut handed_on).await {
        Err(RequestError::Exited {
            cause: Some(FailureCause::Error(e)),
        }) => assert_eq!(e.message(), "device lost"),
        other => panic!("expected the failure, got {other:?}"),
    }
}

#[actix::test]
async fn requests_lost_with_their_arbiter_are_answered_lost() {
    let arbiter = Arbiter::new();
    let (watcher, mut events) = watcher();
    let runtime = RuntimeActor::spawn(
        config()
            .placement(Placement::Shared(arbiter.handle()))
            .watcher(watcher),
        factory(Script::default()),
    );
    events.ready().await;
    // One in the runtime's hands, one queued behind it, one handed on.
    let sleeping = runtime.call(Req::Sleep(Duration::from_secs(3_600)));
    let queued = runtime.call(Req::Echo(1));
    let (answer, mut handed_on) = answers();
    runtime.call_with(Req::Echo(2), answer);
    // Nobody asked the runtime to stop: its thread went away under it.
    arbiter.stop();
    let (sleeping, queued) = tokio::join!(sleeping, queued);
    let handed_on = only_answer(&mut handed_on).await;
    for answer in [sleeping, queued, handed_on] {
        assert!(
            matches!(
                answer,
                Err(RequestError::Exited {
                    cause: Some(FailureCause::Lost)
                })
            ),
            "{answer:?}"
        );
    }
    assert!(matches!(events.failed().await, FailureCause::Lost));
    assert!(matches!(events.exited().await, Some(FailureCause::Lost)));
    let _ = std::thread::spawn(move || arbiter.join()).join();
}

/// Answers each request with how often its neighbour has run so far.
struct Watching(Arc<AtomicU64>);

impl Runtime for Watching {
    type Request = ();
    type Response = u64;

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, (): ()) -> Result<u64, RuntimeError> {
        Ok(self.0.load(Ordering::SeqCst))
    }
}

#[actix::test]
async fn a_flood_of_requests_is_served_in_turns_with_the_neighbours() {
    let turns = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&turns);
    let runtime = RuntimeActor::spawn(
        config().placement(Placement::Current),
        RuntimeFactory::new(move |_| Watching(Arc::clone(&seen))),
    );
    runtime.ready().await.unwrap();
    // A neighbour on the same thread, counting the turns it gets.
    let counting = Arc::clone(&turns);
    let neighbour = actix::spawn(async move {
        loop {
            counting.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
        }
    });
    let calls: Vec<_> = (0..1_000).map(|_| runtime.call(())).collect();
    let answers: Vec<u64> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    neighbour.abort();
    assert!(
        answers.last() > answers.first(),
        "the neighbour never ran while 1,000 requests were served: {:?}..{:?}",
        answers.first(),
        answers.last()
    );
    runtime.stop(STOP).await;
}

#[actix::test]
async fn a_panic_in_an_answer_callback_is_the_callers_not_the_runtimes() {
    tokio::time::pause();
    let (runtime, mut events) = spawn_here(Script::default(), config());
    events.ready().await;
    runtime.call_with(Req::Echo(1), |_| panic!("the caller's own bug"));
    runtime.call_with(Req::Echo(2), |_| panic!("and another"));
    assert_eq!(runtime.call(Req::Echo(3)).await.unwrap(), "3");
    assert!(runtime.failure().is_none(), "{:?}", runtime.failure());
    assert!(events.try_next().is_none(), "no Failed, no Exited");
    runtime.stop(STOP).await;
}

/// A runtime whose answer panics when it is dropped unread.
struct Fragile;

#[derive(Debug)]
enum Fragility {
    /// An answer that panics if nobody takes it.
    Armed,
    Plain,
}

#[derive(Debug)]
struct Answer {
    armed: bool,
}

impl Drop for Answer {
    fn drop(&mut self) {
        if self.armed {
            panic!("an answer nobody read");
        }
    }
}

impl Runtime for Fragile {
    type Request = Fragility;
    type Response = Answer;

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, req: Fragility) -> Result<Answer, RuntimeError> {
        Ok(Answer {
            armed: matches!(req, Fragility::Armed),
        })
    }
}

#[actix::test]
async fn requests_queued_when_a_panic_unwinds_out_of_the_loop_still_get_its_cause() {
    let runtime = RuntimeActor::spawn(
        config().placement(Placement::Current),
        RuntimeFactory::new(|_| Fragile),
    );
    runtime.ready().await.unwrap();
    // Its caller hangs up: the answer is dropped in the serve loop, outside
    // the guard around the handler, and its panic unwinds out of the loop.
    drop(runtime.call(Fragility::Armed));
    let queued: Vec<_> = (0..3).map(|_| runtime.call(Fragility::Plain)).collect();
    for answer in futures::future::join_all(queued).await {
        assert_eq!(panic_told(answer), "an answer nobody read");
    }
    assert!(matches!(
        runtime.failure(),
        Some(FailureCause::Panicked { .. })
    ));
}

#[actix::test]
async fn callbacks_that_panic_on_requests_dropped_unanswered_harm_nothing() {
    tokio::time::pause();
    let (runtime, mut events) = spawn_here(Script::default(), config());
    events.ready().await;
    let ran = Arc::new(AtomicU64::new(0));
    runtime.call_with(Req::Panic, |_| {});
    for n in 0..2 {
        let ran = Arc::clone(&ran);
        runtime.call_with(Req::Echo(n), move |answer| {
            ran.fetch_add(1, Ordering::SeqCst);
            panic!("a callback panics on {answer:?}");
        });
    }
    assert!(matches!(
        events.failed().await,
        FailureCause::Panicked { .. }
    ));
    events.exited().await;
    assert_eq!(ran.load(Ordering::SeqCst), 2, "each callback ran once");
}

/// A runtime whose futures panic when they are dropped: after answering
/// (`handle`), or unfinished (`dispatch`, when `armed`).
struct DropsBadly;

#[derive(Debug)]
enum Badly {
    /// Answered at once by a future that panics when it is dropped.
    AnswerThenPanic,
    /// Sent on to a future that never finishes; `true`: it panics when it
    /// is dropped.
    Pending(bool),
    /// A request that panics when it is dropped unanswered.
    Grenade(Grenade),
}

#[derive(Debug)]
struct Grenade;

impl Drop for Grenade {
    fn drop(&mut self) {
        panic!("a request panicked when dropped");
    }
}

/// Ready at once with its value; its drop panics.
struct ReadyThenPanics(u32);

impl Future for ReadyThenPanics {
    type Output = Result<u32, RuntimeError>;

    fn poll(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(self.0))
    }
}

impl Drop for ReadyThenPanics {
    fn drop(&mut self) {
        panic!("a finished future panicked when dropped");
    }
}

/// Never ready; its drop panics when armed.
struct PendingThenPanics(bool);

impl Future for PendingThenPanics {
    type Output = Result<u32, RequestError>;

    fn poll(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Poll::Pending
    }
}

impl Drop for PendingThenPanics {
    fn drop(&mut self) {
        if self.0 {
            panic!("an unfinished answer panicked when dropped");
        }
    }
}

impl Runtime for DropsBadly {
    type Request = Badly;
    type Response = u32;

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    fn handle(&mut self, _: Badly) -> impl Future<Output = Result<u32, RuntimeError>> {
        ReadyThenPanics(7)
    }

    fn dispatch(&mut self, req: Badly) -> Dispatch<Badly, u32> {
        match req {
            Badly::Pending(armed) => Dispatch::Later(Box::pin(PendingThenPanics(armed))),
            answered => Dispatch::Handle(answered),
        }
    }
}

fn drops_badly() -> RuntimeHandle<DropsBadly> {
    RuntimeActor::spawn(
        config().placement(Placement::Current),
        RuntimeFactory::new(|_| DropsBadly),
    )
}

#[actix::test]
async fn a_handler_future_that_panics_when_dropped_fails_with_its_panic_told_to_its_caller() {
    let runtime = drops_badly();
    runtime.ready().await.unwrap();
    let answer = runtime.call(Badly::AnswerThenPanic).await;
    assert_eq!(
        panic_told(answer),
        "a finished future panicked when dropped"
    );
}

#[actix::test]
async fn answers_in_flight_are_all_given_when_one_of_them_panics_as_it_is_dropped() {
    let runtime = drops_badly();
    runtime.ready().await.unwrap();
    let (first, mut first_answer) = answers();
    runtime.call_with(Badly::Pending(false), first);
    let second = runtime.call(Badly::Pending(false));
    // Sent on last, so dropped first.
    let (armed, mut armed_answer) = answers();
    runtime.call_with(Badly::Pending(true), armed);
    tokio::task::yield_now().await;
    runtime.fail(FailureCause::Unhealthy {
        reason: "judged by its owner".into(),
    });
    let second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("answered, not leaked");
    for answer in [
        second,
        only_answer(&mut first_answer).await,
        only_answer(&mut armed_answer).await,
    ] {
        assert!(
            matches!(
                answer,
                Err(RequestError::Exited {
                    cause: Some(FailureCause::Unhealthy { .. })
                })
            ),
            "{answer:?}"
        );
    }
}

#[actix::test]
async fn requests_that_panic_when_dropped_unanswered_do_not_take_the_others_down() {
    let runtime = drops_badly();
    runtime.ready().await.unwrap();
    // Queued behind a request that fails the runtime: dropped unanswered.
    let fails = runtime.call(Badly::AnswerThenPanic);
    let grenades = [
        runtime.call(Badly::Grenade(Grenade)),
        runtime.call(Badly::Grenade(Grenade)),
    ];
    let plain = runtime.call(Badly::Pending(false));
    let (fails, grenades, plain) = tokio::join!(fails, futures::future::join_all(grenades), plain);
    for answer in std::iter::once(fails).chain(grenades).chain([plain]) {
        assert!(
            matches!(
                answer,
                Err(RequestError::Exited {
                    cause: Some(FailureCause::Panicked { .. })
                })
            ),
            "{answer:?}"
        );
    }
}

#[actix::test]
async fn a_refused_request_that_panics_when_dropped_leaves_the_runtime_be() {
    let runtime = drops_badly();
    // Before the runtime is ready: refused, and dropped unserved.
    let refused = runtime.call(Badly::Grenade(Grenade));
    let sent = runtime.addr().send(Request(Badly::Grenade(Grenade)));
    let (refused, sent) = tokio::join!(refused, sent);
    assert!(
        matches!(refused, Err(RequestError::NotReady)),
        "{refused:?}"
    );
    assert!(matches!(sent, Ok(Err(RequestError::NotReady))), "{sent:?}");
    runtime.ready().await.unwrap();
    assert!(runtime.failure().is_none(), "{:?}", runtime.failure());
    let report = runtime.stop(STOP).await;
    assert!(report.graceful() && report.cause.is_none(), "{report:?}");
}

#[actix::test]
async fn a_request_that_panics_as_the_handler_takes_it_is_answered_with_its_panic() {
    let runtime = drops_badly();
    runtime.ready().await.unwrap();
    // `handle` takes the request and drops it before it returns its future.
    let answer = runtime.call(Badly::Grenade(Grenade)).await;
    assert_eq!(panic_told(answer), "a request panicked when dropped");
}
