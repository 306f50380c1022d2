use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{self, Poll, Waker};
use std::time::Duration;

use actix::dev::{MessageResponse, OneshotSender};
use actix::{
    Actor, ActorContext, ActorFuture, Arbiter, AsyncContext, Context, Handler, ResponseFuture,
};
use futures::future::{self, Either, LocalBoxFuture};
use futures::stream::{FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::context::{FailureReporter, RuntimeContext, Signal};
use crate::env::RuntimeEnv;
use crate::error::{FailureCause, RequestError, RuntimeError};
use crate::fate::Fate;
use crate::lane::Lane;
use crate::messages::{Ask, AskHealth, CheckHealth, KillRuntime, Request, StopRuntime};
use crate::monitor::{self, Signals};
use crate::panic;
use crate::reply::Reply;
use crate::runtime::{Dispatch, Runtime, RuntimeFactory};

/// The actor that hosts one generation of a [`Runtime`].
///
/// It runs on the runtime's arbiter (its own thread with
/// [`Placement::Dedicated`](crate::Placement::Dedicated), or a shared one) and
/// is started with [`RuntimeActor::spawn`], which also starts a monitor on the
/// caller's arbiter. The monitor enforces the start deadline and reports to the
/// watcher, so a runtime that blocks its thread cannot hide its failure. A
/// runtime started in place ([`Placement::Current`](crate::Placement::Current))
/// shares the caller's thread, where a monitor could see nothing more: it
/// reports to the watcher and keeps its deadline itself, with no task and
/// no hop in between.
///
/// # Lifecycle
///
/// ```text
///            ready                     StopRuntime
/// Starting ─────────► Ready ──────────────────────► Stopping ──► Exited
///    │   (Ready event)  │  (queued requests answered,    ▲
///    │                  │   then teardown)               │
///    │ StopRuntime      │ panic, fatal error,            │
///    │ (setup dropped,  │ a FailureReporter's report     │
///    │  then teardown)  │                                │
///    └──────────────────┴─────► Failed (Failed event) ───┘
/// ```
///
/// - `Ready` is sent once, when `setup` returns `Ok`.
/// - `Failed` is sent once, at the first failure: `setup` returning an error, a
///   panic in any call into the runtime, a fatal error from `handle` or
///   `health`, a [`FailureReporter`] report, or the start deadline passing.
/// - `Exited` is sent exactly once, from the actor's drop guard, so an end
///   nobody asked for (the arbiter stopped under the actor) is seen too; it
///   then carries [`FailureCause::Lost`].
///
/// Requests before `Ready` are answered [`RequestError::NotReady`]; after a stop
/// was asked for, [`RequestError::Stopping`]; requests queued or in flight when
/// the runtime fails, [`RequestError::Exited`] with the cause.
pub struct RuntimeActor<R: Runtime> {
    /// What `started` moves into the serve loop, with the guard's signals
    /// and fate.
    pending: Option<Build<R>>,
    guard: DeathGuard,
    /// After the guard: when the actor goes, the guard records why before
    /// the requests still held here can be dropped.
    serving: Rc<Serving<R>>,
    /// In place: the lane through which the owner queues its requests,
    /// opened at the first one that came through the mailbox.
    lane: Option<Lane>,
    lane_open: bool,
    dedicated: bool,
    stop_timeout: Duration,
    _runtime: PhantomData<fn() -> R>,
}

impl<R: Runtime> Drop for RuntimeActor<R> {
    fn drop(&mut self) {
        // Later requests take the mailbox, and hear that the actor is gone.
        if let (Some(lane), true) = (self.lane, self.lane_open) {
            lane.close();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Ready,
    Stopping,
}

pub(crate) enum Op<R: Runtime> {
    Request(R::Request, Reply<R::Response>),
    Health(Reply<()>),
    Teardown,
}

/// Answers still to come from requests sent on (`Dispatch::Later`); each
/// yields the failure it caused, if any.
type InFlight = FuturesUnordered<LocalBoxFuture<'static, Option<FailureCause>>>;

/// What the actor and its serve loop share: the requests queued for the
/// loop, and those it has taken and not yet answered.
///
/// Both live here rather than in the loop's future, and the actor holds
/// them too: a panic that unwinds out of the loop (from user code outside
/// the guards around each call, such as a response's `Drop`) then cannot
/// drop them before the actor records the failure, and each reply still
/// says why.
struct Serving<R: Runtime> {
    phase: Cell<Phase>,
    /// Queued by the actor, taken by the loop; never borrowed across an
    /// await, nor while user code runs.
    ops: RefCell<VecDeque<Op<R>>>,
    /// The loop's waker while it waits for an op.
    parked: Cell<Option<Waker>>,
    /// Answers still to come from requests sent on (`Dispatch::Later`),
    /// made at the first: a runtime that answers at once pays nothing for
    /// it. Borrowed by the loop for as long as it serves.
    in_flight: RefCell<Option<InFlight>>,
}

impl<R: Runtime> Serving<R> {
    fn new() -> Self {
        Serving {
            phase: Cell::new(Phase::Starting),
            ops: RefCell::new(VecDeque::new()),
            parked: Cell::new(None),
            in_flight: RefCell::new(None),
        }
    }

    /// Queues `op` from one of the actor's handlers, without waking the
    /// loop.
    ///
    /// A handler runs while the actor's context reads its mailbox, and the
    /// context polls its futures (the loop among them) right after, in the
    /// same pass: the loop finds the op then. A wake would only have the
    /// task polled once more for nothing, once per request.
    fn queue(&self, op: Op<R>) {
        self.ops.borrow_mut().push_back(op);
    }

    /// Queues `op` from anywhere on the actor's thread, and wakes the loop.
    fn queue_and_wake(&self, op: Op<R>) {
        self.queue(op);
        self.wake();
    }

    fn wake(&self) {
        if let Some(waker) = self.parked.take() {
            waker.wake();
        }
    }

    fn park(&self, cx: &task::Context<'_>) {
        let waker = match self.parked.take() {
            Some(parked) if parked.will_wake(cx.waker()) => parked,
            _ => cx.waker().clone(),
        };
        self.parked.set(Some(waker));
    }

    /// Why a request is refused now, if it is.
    fn refusal(&self) -> Option<RequestError> {
        match self.phase.get() {
            Phase::Ready => None,
            Phase::Starting => Some(RequestError::NotReady),
            Phase::Stopping => Some(RequestError::Stopping),
        }
    }

    /// The next op, once there is one.
    fn next_op(&self) -> impl Future<Output = Op<R>> + '_ {
        future::poll_fn(|cx| match self.ops.borrow_mut().pop_front() {
            Some(op) => Poll::Ready(op),
            None => {
                self.park(cx);
                Poll::Pending
            }
        })
    }

    /// Resolves once a stop was asked for, to abandon setup.
    fn stop_asked(&self) -> impl Future<Output = ()> + '_ {
        future::poll_fn(|cx| match self.phase.get() {
            Phase::Stopping => Poll::Ready(()),
            Phase::Starting | Phase::Ready => {
                self.park(cx);
                Poll::Pending
            }
        })
    }
}

impl<R: Runtime> Drop for Serving<R> {
    /// Drops what is still held one at a time, each under a guard: a request
    /// or an answer in flight whose drop panics (user code) then cannot keep
    /// the others from being answered, as `FuturesUnordered` would by leaking
    /// the rest, nor abort the process with a second panic.
    fn drop(&mut self) {
        for answer in self.in_flight.get_mut().take().into_iter().flatten() {
            drop_aside(answer);
        }
        let ops = self.ops.get_mut();
        while let Some(op) = ops.pop_front() {
            drop_aside(op);
        }
    }
}

/// Drops something a runtime held, catching (and logging) a panic in it.
fn drop_aside<T>(held: T) {
    if let Err(panic) = panic::catch_outside(move || drop(held)) {
        tracing::error!(%panic, "dropping a request the runtime still held panicked");
    }
}

/// What the actor needs to build and run its runtime, moved to its thread.
pub(crate) struct Launch<R: Runtime> {
    pub(crate) factory: RuntimeFactory<R>,
    pub(crate) env: RuntimeEnv,
    pub(crate) name: Arc<str>,
    pub(crate) generation: u64,
    pub(crate) signals: Signals,
    /// How long a runtime that missed its start deadline has to stop
    /// gracefully; kept by the actor itself when its signals are direct.
    pub(crate) stop_timeout: Duration,
    pub(crate) fate: Arc<Fate>,
    /// The arbiter is the runtime's own: stopped with the actor.
    pub(crate) dedicated: bool,
    /// In place: the lane to open to the actor's queue.
    pub(crate) lane: Option<Lane>,
}

/// What only the serve loop needs of a [`Launch`]: the rest the actor
/// keeps, and the loop is given what it needs of that. The actor is moved
/// whole several times as actix starts it; the less it holds, the less is
/// copied.
struct Build<R: Runtime> {
    factory: RuntimeFactory<R>,
    env: RuntimeEnv,
    name: Arc<str>,
    generation: u64,
}

/// What [`Runtime::dispatch`] gave for a request, with the answer of
/// [`Runtime::handle`] when it asked for one: both run under one panic
/// guard.
enum Handled<A> {
    /// Answered by [`Runtime::handle`].
    Now(Result<A, RuntimeError>),
    /// To be answered by this future, beside the requests that follow.
    Later(LocalBoxFuture<'static, Result<A, RequestError>>),
}

/// How the serve loop ended when it did not panic.
enum Served {
    Stopped,
    Failed(FailureCause),
}

/// Reports the end of the actor from `Drop`, whatever ended it.
struct DeathGuard {
    signals: Signals,
    fate: Arc<Fate>,
    stop_requested: bool,
}

impl Drop for DeathGuard {
    fn drop(&mut self) {
        if !self.stop_requested && self.fate.get().is_none() {
            let _ = self.fate.set(FailureCause::Lost);
        }
        self.signals.send(Signal::Exited {
            cause: self.fate.get().cloned(),
        });
    }
}

// ===== impl RuntimeActor =====

impl<R: Runtime> RuntimeActor<R> {
    pub(crate) fn new(launch: Launch<R>) -> Self {
        let Launch {
            factory,
            env,
            name,
            generation,
            signals,
            stop_timeout,
            fate,
            dedicated,
            lane,
        } = launch;
        let guard = DeathGuard {
            signals,
            fate,
            stop_requested: false,
        };
        RuntimeActor {
            pending: Some(Build {
                factory,
                env,
                name,
                generation,
            }),
            guard,
            serving: Rc::new(Serving::new()),
            lane,
            lane_open: false,
            dedicated,
            stop_timeout,
            _runtime: PhantomData,
        }
    }

    /// Asks for the graceful stop: setup abandoned, or teardown queued
    /// behind the requests already taken.
    fn stop(&mut self) {
        self.guard.stop_requested = true;
        // Also called from the start deadline's timer, outside the mailbox:
        // the loop is woken either way.
        match self.serving.phase.replace(Phase::Stopping) {
            // Setup sees the phase and is abandoned.
            Phase::Starting => self.serving.wake(),
            Phase::Ready => self.serving.queue_and_wake(Op::Teardown),
            Phase::Stopping => {}
        }
    }

    /// Stops at once, without teardown.
    fn kill(&mut self, ctx: &mut Context<Self>) {
        self.guard.stop_requested = true;
        self.serving.phase.set(Phase::Stopping);
        ctx.stop();
    }

    /// In place, the actor keeps its own start deadline (a monitor does
    /// elsewhere): a timer in its context, moved on as setup extends it.
    fn arm_deadline(&mut self, ctx: &mut Context<Self>) {
        let Signals::Direct(report) = &self.guard.signals else {
            return;
        };
        let Some(at) = monitor::lock(report).deadline else {
            return;
        };
        let wait = at.saturating_duration_since(Instant::now());
        ctx.run_later(wait, |act, ctx| act.deadline_passed(ctx));
    }

    /// The start deadline's timer fired: unless setup moved it on or
    /// finished, the runtime fails with `TimedOut` and is stopped, the
    /// graceful way first and by force after the stop timeout.
    fn deadline_passed(&mut self, ctx: &mut Context<Self>) {
        let Signals::Direct(report) = &self.guard.signals else {
            return;
        };
        {
            let mut report = monitor::lock(report);
            match report.deadline {
                None => return,
                Some(at) if at > Instant::now() => {
                    drop(report);
                    self.arm_deadline(ctx);
                    return;
                }
                Some(_) => report.time_out(),
            }
        }
        self.stop();
        ctx.run_later(self.stop_timeout, |act, ctx| act.kill(ctx));
    }

    /// Records the failure unless one is recorded already, tells the first
    /// one recorded, and stops the actor.
    ///
    /// The first may be this one, recorded by the serve loop before it
    /// answered the request that caused it, or one its start deadline
    /// recorded (and told) already: the report tells a generation's failure
    /// once, whoever records it.
    fn fail(&mut self, cause: FailureCause, ctx: &mut Context<Self>) {
        let first = self.guard.fate.get_or_init(|| cause);
        tracing::debug!(cause = %first, "runtime failed");
        self.guard.signals.send(Signal::Failed {
            cause: first.clone(),
        });
        self.serving.phase.set(Phase::Stopping);
        ctx.stop();
    }

    /// An `Ask` of the owner's came through the mailbox: in place, the
    /// owner's lane counts it until now, and opens at the first. A runtime
    /// its owner never calls (most of a large deployment's, until traffic
    /// comes) costs no lane.
    fn delivered(&mut self) {
        if let Some(lane) = self.lane {
            self.guard.fate.delivered();
            if !self.lane_open {
                self.lane_open = true;
                lane.open(Rc::clone(&self.serving));
            }
        }
    }

    /// Queues `op` for the serve loop, or refuses it through its reply.
    fn enqueue<T>(&self, reply: Reply<T>, op: impl FnOnce(Reply<T>) -> Op<R>) {
        queue_or_refuse(&self.serving, self.serving.refusal(), reply, op);
    }
}

/// Queues the owner's request (or health check) through the runtime's
/// lane, on the thread the runtime runs in place on; gives it back for the
/// mailbox when the lane is not open here (another thread, or the actor is
/// gone), and when the runtime does not serve: its handler refuses it
/// there, so that an answer never runs inside the call that asked.
pub(crate) fn ask_in_place<R: Runtime>(lane: Lane, op: Op<R>) -> Option<Op<R>> {
    match lane.find::<Serving<R>>() {
        Some(serving) if serving.refusal().is_none() => {
            // Outside the actor's handlers: the loop is woken.
            serving.queue_and_wake(op);
            None
        }
        _ => Some(op),
    }
}

/// Queues `op` for the serve loop, or, `refused`, gives its reply the
/// refusal. Called from the actor's handlers only (see [`Serving::queue`]).
fn queue_or_refuse<R: Runtime, T>(
    serving: &Serving<R>,
    refused: Option<RequestError>,
    reply: Reply<T>,
    op: impl FnOnce(Reply<T>) -> Op<R>,
) {
    match refused {
        Some(refused) => {
            reply.send(Err(refused));
            // The request goes unserved, and its drop is user code.
            drop_aside(op);
        }
        None => serving.queue(op(reply)),
    }
}

impl<R: Runtime> Actor for RuntimeActor<R> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(build) = self.pending.take() else {
            return;
        };
        if let Some(cause) = self.guard.fate.get().cloned() {
            // Failed before it could run (its arbiter could not be made):
            // the factory is never called.
            self.guard.signals.send(Signal::Failed { cause });
            self.serving.phase.set(Phase::Stopping);
            ctx.stop();
            return;
        }
        ctx.spawn(Serve {
            served: panic::catch_async(serve(
                build,
                self.guard.signals.clone(),
                Arc::clone(&self.guard.fate),
                Rc::clone(&self.serving),
            )),
            armed: false,
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // A dedicated arbiter ends with its runtime, even when the owner (and
        // the monitor that would stop it) is already gone.
        if self.dedicated {
            if let Some(arbiter) = Arbiter::try_current() {
                arbiter.stop();
            }
        }
    }
}

/// The answer to a [`Request`] sent straight to a [`RuntimeActor`]: the
/// request is queued for the runtime as its message is handled (so it keeps
/// its place before a later stop), and the runtime answers straight into
/// the sender's reply channel, with no task in between.
pub struct Queued<R: Runtime> {
    req: R::Request,
    refused: Option<RequestError>,
    serving: Rc<Serving<R>>,
    fate: Arc<Fate>,
}

impl<R: Runtime> MessageResponse<RuntimeActor<R>, Request<R>> for Queued<R> {
    fn handle(
        self,
        _: &mut Context<RuntimeActor<R>>,
        tx: Option<OneshotSender<Result<R::Response, RequestError>>>,
    ) {
        // Sent with `do_send`: still served, the answer dropped.
        let reply = match tx {
            Some(tx) => Reply::channel(tx, self.fate),
            None => Reply::nobody(self.fate),
        };
        let req = self.req;
        queue_or_refuse(&self.serving, self.refused, reply, |reply| {
            Op::Request(req, reply)
        });
    }
}

impl<R: Runtime> std::fmt::Debug for Queued<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued")
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Handler<Request<R>> for RuntimeActor<R> {
    type Result = Queued<R>;

    fn handle(&mut self, Request(req): Request<R>, _: &mut Context<Self>) -> Self::Result {
        Queued {
            req,
            refused: self.serving.refusal(),
            serving: Rc::clone(&self.serving),
            fate: Arc::clone(&self.guard.fate),
        }
    }
}

impl<R: Runtime> Handler<Ask<R>> for RuntimeActor<R> {
    type Result = ();

    fn handle(&mut self, Ask { req, reply }: Ask<R>, _: &mut Context<Self>) {
        self.delivered();
        self.enqueue(reply, |reply| Op::Request(req, reply));
    }
}

impl<R: Runtime> Handler<AskHealth> for RuntimeActor<R> {
    type Result = ();

    fn handle(&mut self, AskHealth { reply }: AskHealth, _: &mut Context<Self>) {
        self.delivered();
        self.enqueue(reply, Op::Health);
    }
}

impl<R: Runtime> Handler<CheckHealth> for RuntimeActor<R> {
    type Result = ResponseFuture<Result<(), RequestError>>;

    fn handle(&mut self, _: CheckHealth, _: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = Reply::awaited(Arc::clone(&self.guard.fate));
        self.enqueue(reply, Op::Health);
        Box::pin(answer)
    }
}

impl<R: Runtime> Handler<StopRuntime> for RuntimeActor<R> {
    type Result = ();

    fn handle(&mut self, _: StopRuntime, _: &mut Context<Self>) {
        self.stop();
    }
}

impl<R: Runtime> Handler<KillRuntime> for RuntimeActor<R> {
    type Result = ();

    fn handle(&mut self, kill: KillRuntime, ctx: &mut Context<Self>) {
        match kill.cause {
            Some(cause) => self.fail(cause, ctx),
            None => self.kill(ctx),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for RuntimeActor<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeActor")
            .field("runtime", &std::any::type_name::<R>())
            .field("phase", &self.serving.phase.get())
            .finish()
    }
}

// ===== serve loop =====

pin_project! {
    /// The serve loop as one of the actor's futures: it arms the start
    /// deadline after setup's first poll, fails the actor on a
    /// [`FailureReporter`]'s report, and ends it the way the loop ended.
    struct Serve<F> {
        #[pin]
        served: F,
        armed: bool,
    }
}

impl<R, F> ActorFuture<RuntimeActor<R>> for Serve<F>
where
    R: Runtime,
    F: Future<Output = Result<Served, FailureCause>>,
{
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut RuntimeActor<R>,
        ctx: &mut Context<RuntimeActor<R>>,
        task: &mut task::Context<'_>,
    ) -> Poll<()> {
        let this = self.project();
        let fate = &act.guard.fate;
        if !*this.armed {
            fate.watch(task.waker());
        }
        if let Some(cause) = fate.take_report() {
            act.fail(cause, ctx);
            return Poll::Ready(());
        }
        let served = match this.served.poll(task) {
            Poll::Ready(served) => served,
            Poll::Pending => {
                // Armed only now: a setup that is done at its first poll
                // (most in-process runtimes) then needs no timer, and a
                // start no timer registration (on an idle runtime, a write
                // to its driver's waker).
                if !*this.armed {
                    *this.armed = true;
                    act.arm_deadline(ctx);
                }
                return Poll::Pending;
            }
        };
        match served {
            Ok(Served::Stopped) => ctx.stop(),
            Ok(Served::Failed(cause)) | Err(cause) => act.fail(cause, ctx),
        }
        Poll::Ready(())
    }
}

/// Builds the runtime, sets it up and serves its queue until teardown.
///
/// Runs inside one panic guard, so a panic anywhere in user code (factory,
/// setup, handle, health, teardown, or the runtime's `Drop`) ends it with the
/// panic's cause.
///
/// The requests it takes stay in `serving`, which the actor holds too, until
/// the actor has recorded how the loop ended. Only this loop borrows the
/// answers in flight, for as long as it serves; the actor merely holds them.
#[allow(clippy::await_holding_refcell_ref)]
async fn serve<R: Runtime>(
    build: Build<R>,
    signals: Signals,
    fate: Arc<Fate>,
    serving: Rc<Serving<R>>,
) -> Served {
    let phase = &serving.phase;
    let begun = Instant::now();
    let mut runtime = build.factory.build(&build.env);
    // The environment goes to the runtime's context once built: no copy.
    let mut ctx = RuntimeContext::new(
        build.name,
        build.generation,
        build.env,
        signals.clone(),
        FailureReporter::new(fate),
    );
    let setup = {
        let setup = std::pin::pin!(runtime.setup(&mut ctx));
        match future::select(setup, std::pin::pin!(serving.stop_asked())).await {
            Either::Left((result, _)) => Some(result),
            Either::Right(_) => None,
        }
    };
    let ready = match setup {
        // Unless a failure was recorded meanwhile (a monitor timed the start
        // out while setup held the thread): it never serves, and teardown
        // undoes what setup made, as after a stop.
        Some(Ok(())) => !ctx.failure_recorded(),
        Some(Err(e)) => return Served::Failed(FailureCause::Error(e)),
        // Stopped during setup: what setup already made (a child process,
        // say) is undone by teardown, the graceful way.
        None => false,
    };
    // A stop that came in the same turn as setup finished queued no
    // teardown op; it is run below too.
    if ready && phase.get() != Phase::Stopping {
        phase.set(Phase::Ready);
        signals.send(Signal::Ready {
            setup: begun.elapsed(),
            pid: ctx.pid(),
        });
        let mut in_flight = serving.in_flight.borrow_mut();
        let in_flight = &mut *in_flight;
        loop {
            let waiting = in_flight.as_ref().is_some_and(|f| !f.is_empty());
            let op = tokio::select! {
                biased;
                Some(fatal) = next_answer(in_flight), if waiting => {
                    match fatal {
                        Some(cause) => return Served::Failed(cause),
                        None => continue,
                    }
                }
                op = serving.next_op() => op,
            };
            // A share of the task's budget per request, as tokio's own
            // channels take: a flood of requests is answered in turns, so
            // that the neighbours on this arbiter, and the callers the
            // answers wake, run in between.
            tokio::task::coop::consume_budget().await;
            // Caught here, next to user code: the request that panicked is
            // answered with its cause, and the unwinding stays short.
            let fatal = match op {
                Op::Request(req, reply) => {
                    // One guard for both calls: a panic in either answers
                    // the request the same way.
                    let handled = panic::catch_async(async {
                        match runtime.dispatch(req) {
                            Dispatch::Handle(req) => {
                                // A panic `dispatch` caught itself left its
                                // location; it is not `handle`'s.
                                panic::clear_location();
                                Handled::Now(runtime.handle(req).await)
                            }
                            Dispatch::Later(answer) => Handled::Later(answer),
                        }
                    });
                    match handled.await {
                        Ok(Handled::Now(answer)) => {
                            answer_with(reply, answer.map_err(RequestError::Runtime))
                        }
                        Ok(Handled::Later(later)) => {
                            in_flight
                                .get_or_insert_with(FuturesUnordered::new)
                                .push(Box::pin(answer_later(reply, later)));
                            None
                        }
                        Err(cause) => Some(answer_panic(reply, cause)),
                    }
                }
                Op::Health(reply) => {
                    match panic::catch_async(async { runtime.health().await }).await {
                        Ok(answer) => answer_with(reply, answer.map_err(RequestError::Runtime)),
                        Err(cause) => Some(answer_panic(reply, cause)),
                    }
                }
                // A graceful end answers what is in flight first.
                Op::Teardown => {
                    while let Some(fatal) = next_answer(in_flight).await {
                        if let Some(cause) = fatal {
                            return Served::Failed(cause);
                        }
                    }
                    break;
                }
            };
            if let Some(cause) = fatal {
                return Served::Failed(cause);
            }
        }
    }
    // One teardown for every graceful end.
    runtime.teardown().await;
    Served::Stopped
}

/// The next of the answers in flight to be given; `None` when there is none.
async fn next_answer(in_flight: &mut Option<InFlight>) -> Option<Option<FailureCause>> {
    in_flight.as_mut()?.next().await
}

/// Awaits an answer sent on by [`Runtime::dispatch`] and gives it to the
/// caller; returns the failure it caused (a panic, a fatal error).
async fn answer_later<T>(
    reply: Reply<T>,
    answer: LocalBoxFuture<'static, Result<T, RequestError>>,
) -> Option<FailureCause> {
    match panic::catch_async(answer).await {
        Ok(answer) => answer_with(reply, answer),
        Err(cause) => Some(answer_panic(reply, cause)),
    }
}

/// Answers a request whose handler panicked; returns the panic's cause.
fn answer_panic<T>(reply: Reply<T>, cause: FailureCause) -> FailureCause {
    reply.record_failure(&cause);
    reply.send(Err(RequestError::Exited {
        cause: Some(cause.clone()),
    }));
    cause
}

/// Sends the answer; returns the failure it is to the runtime when it is a
/// fatal error, recorded before the answer goes.
fn answer_with<T>(reply: Reply<T>, answer: Result<T, RequestError>) -> Option<FailureCause> {
    let fatal = match &answer {
        Err(RequestError::Runtime(e)) if e.is_fatal() => Some(FailureCause::Error(e.clone())),
        _ => None,
    };
    if let Some(cause) = &fatal {
        reply.record_failure(cause);
    }
    reply.send(answer);
    fatal
}
